import type { EdgeState, MeshService, MeshSummary, ServiceState } from "../summary-types.js";
import { formatMs, formatRate, formatShare } from "./live-summary.js";

const positions: Record<MeshService, { x: number; y: number }> = {
  "user-orders": { x: 300, y: 40 },
  users: { x: 90, y: 230 },
  orders: { x: 300, y: 230 },
  products: { x: 510, y: 230 },
};
const nodeWidth = 150;
const nodeHeight = 46;

function Node({ state }: { state: ServiceState }) {
  const { x, y } = positions[state.service];
  return (
    <g class={state.up ? "node up" : "node down"} data-testid={`node-${state.service}`}>
      <title>{state.up ? `${state.service}: up` : `${state.service}: down (${state.problem ?? "no answer"})`}</title>
      <rect x={x - nodeWidth / 2} y={y - nodeHeight / 2} width={nodeWidth} height={nodeHeight} rx={8} />
      <text x={x} y={y - 4} text-anchor="middle" class="node-name">
        {state.service}
      </text>
      <text x={x} y={y + 14} text-anchor="middle" class="node-status">
        {state.up ? `up · ${formatRate(state.callsPerSecond)}` : "DOWN"}
      </text>
    </g>
  );
}

function Edge({ edge }: { edge: EdgeState }) {
  const a = positions[edge.from];
  const b = positions[edge.to];
  // orders → products runs along the bottom row; the others fan out from user-orders.
  const horizontal = a.y === b.y;
  const start = horizontal
    ? { x: a.x + nodeWidth / 2, y: a.y }
    : { x: a.x + (b.x - a.x) * 0.25, y: a.y + nodeHeight / 2 };
  const end = horizontal ? { x: b.x - nodeWidth / 2, y: b.y } : { x: b.x, y: b.y - nodeHeight / 2 };
  const mid = { x: (start.x + end.x) / 2, y: (start.y + end.y) / 2 };
  const failing = (edge.errorShare ?? 0) > 0 || edge.breaker === "open";
  return (
    <g class={failing ? "edge failing" : "edge"}>
      <line x1={start.x} y1={start.y} x2={end.x} y2={end.y} marker-end="url(#arrow)" />
      <text
        x={mid.x + (horizontal ? 0 : 6)}
        y={mid.y + (horizontal ? -22 : -8)}
        text-anchor="middle"
        class="edge-label"
      >
        {formatRate(edge.ratePerSecond)} · p99 {edge.p99Ms === null ? "–" : `≤ ${formatMs(edge.p99Ms)}`}
      </text>
      <text x={mid.x + (horizontal ? 0 : 6)} y={mid.y + (horizontal ? -8 : 6)} text-anchor="middle" class="edge-label">
        errors {formatShare(edge.errorShare)}
      </text>
    </g>
  );
}

/** The four services, the calls between them with their rate, p99 and error share, breakers and stream lag. */
export function Topology({ summary }: { summary: MeshSummary | undefined }) {
  if (summary === undefined) {
    return <p class="empty">Waiting for the first scrape of the services' metrics…</p>;
  }
  const breakers = summary.edges.filter((edge) => edge.breaker !== undefined);
  return (
    <div class="topology">
      <svg viewBox="0 0 600 270" role="img" aria-label="Services and the calls between them">
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
            <path d="M0,0 L10,5 L0,10 z" />
          </marker>
        </defs>
        {summary.edges.map((edge) => (
          <Edge key={`${edge.from}-${edge.to}`} edge={edge} />
        ))}
        {summary.services.map((state) => (
          <Node key={state.service} state={state} />
        ))}
      </svg>
      <table class="visually-hidden">
        <caption>Calls between the services</caption>
        <thead>
          <tr>
            <th scope="col">from</th>
            <th scope="col">to</th>
            <th scope="col">requests</th>
            <th scope="col">p99</th>
            <th scope="col">errors</th>
          </tr>
        </thead>
        <tbody>
          {summary.edges.map((edge) => (
            <tr key={`${edge.from}-${edge.to}`}>
              <td>{edge.from}</td>
              <td>{edge.to}</td>
              <td>{formatRate(edge.ratePerSecond)}</td>
              <td>{formatMs(edge.p99Ms)}</td>
              <td>{formatShare(edge.errorShare)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="facts">
        <table>
          <caption>user-orders' circuit breakers</caption>
          <tbody>
            {breakers.length === 0 ? (
              <tr>
                <td colSpan={2}>
                  {summary.services.find((s) => s.service === "user-orders")?.up ? "none yet" : "user-orders is down"}
                </td>
              </tr>
            ) : (
              breakers.map((edge) => (
                <tr key={edge.to}>
                  <th scope="row">{edge.to}</th>
                  <td class={`breaker ${edge.breaker}`} data-testid={`breaker-${edge.to}`}>
                    {edge.breaker}
                  </td>
                </tr>
              ))
            )}
          </tbody>
        </table>
        <table>
          <caption>Event streams into user-orders' projection</caption>
          <tbody>
            {summary.streams.length === 0 ? (
              <tr>
                <td colSpan={2}>no stream reported</td>
              </tr>
            ) : (
              summary.streams.map((stream) => (
                <tr key={stream.stream}>
                  <th scope="row">{stream.stream}</th>
                  <td data-testid={`stream-${stream.stream}`}>
                    {stream.connected === false ? "disconnected, " : ""}lag {stream.lagEvents ?? "–"} events
                  </td>
                </tr>
              ))
            )}
          </tbody>
        </table>
        <p class="note">
          Requests, p99 (the bound of the histogram bucket it falls in) and errors over the last {summary.windowSeconds}{" "}
          s of the callers' metrics.
        </p>
      </div>
    </div>
  );
}
