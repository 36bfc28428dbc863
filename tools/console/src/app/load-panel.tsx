import { useEffect, useRef, useState } from "preact/hooks";
import { type LoadSample, type LoadState, maxLoadRate } from "../summary-types.js";
import { bearer } from "./clients.js";
import { formatMs } from "./live-summary.js";

const chartWidth = 560;
const chartHeight = 170;
const spanMs = 60_000;
const pad = { left: 44, right: 8, top: 8, bottom: 22 };

function LatencyChart({ samples, nowMs }: { samples: LoadSample[]; nowMs: number }) {
  const maxMs = Math.max(50, ...samples.map((s) => s.latencyMs));
  // A round top for the axis so that it does not jump with every new maximum.
  const top = [50, 100, 250, 500, 1000, 2500, 5000, 10000].find((t) => t >= maxMs) ?? maxMs;
  const x = (atMs: number) => pad.left + ((atMs - (nowMs - spanMs)) / spanMs) * (chartWidth - pad.left - pad.right);
  const y = (ms: number) => chartHeight - pad.bottom - (ms / top) * (chartHeight - pad.top - pad.bottom);
  const line = (consistency: LoadSample["consistency"]) =>
    samples
      .filter((s) => s.consistency === consistency)
      .map((s) => `${x(s.atMs).toFixed(1)},${y(s.latencyMs).toFixed(1)}`)
      .join(" ");
  return (
    <svg
      viewBox={`0 0 ${chartWidth} ${chartHeight}`}
      class="latency-chart"
      role="img"
      aria-label="View latency over the last minute, STRONG and EVENTUAL"
    >
      {[0, 0.5, 1].map((f) => (
        <g key={f}>
          <line class="grid" x1={pad.left} x2={chartWidth - pad.right} y1={y(top * f)} y2={y(top * f)} />
          <text class="axis" x={pad.left - 4} y={y(top * f) + 4} text-anchor="end">
            {top * f}
          </text>
        </g>
      ))}
      <text class="axis" x={pad.left} y={chartHeight - 6}>
        −60 s
      </text>
      <text class="axis" x={chartWidth - pad.right} y={chartHeight - 6} text-anchor="end">
        now (ms)
      </text>
      <polyline class="series strong" points={line("STRONG")} />
      <polyline class="series eventual" points={line("EVENTUAL")} />
      {samples
        .filter((s) => s.outcome !== "full")
        .map((s) => (
          <circle key={s.traceId} class={`mark ${s.outcome}`} cx={x(s.atMs)} cy={y(s.latencyMs)} r={2.5} />
        ))}
    </svg>
  );
}

function Shares({ samples }: { samples: LoadSample[] }) {
  const rows = (["STRONG", "EVENTUAL"] as const).map((consistency) => {
    const mine = samples.filter((s) => s.consistency === consistency);
    const share = (outcome: LoadSample["outcome"]) =>
      mine.length === 0
        ? "–"
        : `${Math.round((100 * mine.filter((s) => s.outcome === outcome).length) / mine.length)} %`;
    return {
      consistency,
      count: mine.length,
      full: share("full"),
      degraded: share("degraded"),
      failed: share("failed"),
    };
  });
  const degradedBy = (dependency: string) =>
    samples.filter(
      (s) =>
        s.consistency === "STRONG" &&
        s.outcome === "degraded" &&
        s.detail.split(", ").some((d) => d.startsWith(`${dependency} `)),
    ).length;
  return (
    <>
      <table class="shares">
        <caption>Answers in the last 5 s</caption>
        <thead>
          <tr>
            <th scope="col">view</th>
            <th scope="col">views</th>
            <th scope="col">full</th>
            <th scope="col">degraded</th>
            <th scope="col">failed</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={row.consistency}>
              <th scope="row" class={row.consistency.toLowerCase()}>
                {row.consistency}
              </th>
              <td data-testid={`views-${row.consistency}`}>{row.count}</td>
              <td data-testid={`share-${row.consistency}-full`}>{row.full}</td>
              <td data-testid={`share-${row.consistency}-degraded`}>{row.degraded}</td>
              <td data-testid={`share-${row.consistency}-failed`}>{row.failed}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p class="degraded-by">
        STRONG views degraded by:{" "}
        {["users", "orders", "products"].map((dependency, index) => (
          <span key={dependency}>
            {index > 0 ? ", " : ""}
            {dependency} <span data-testid={`degraded-by-${dependency}`}>{degradedBy(dependency)}</span>
          </span>
        ))}
      </p>
    </>
  );
}

/** The built-in load: a rate slider (off by default), latency over time, outcome shares, and recent views to trace. */
export function LoadPanel(props: {
  load: LoadState | undefined;
  nowMs: number;
  admin: boolean;
  onPickTrace: (traceId: string) => void;
}) {
  const running = props.load?.ratePerSecond ?? 0;
  const [rate, setRate] = useState(running);
  const [problem, setProblem] = useState<string | undefined>();
  // The server's rate wins (a load stops by itself after a while), but not over a slider being moved.
  const editedAt = useRef(0);
  useEffect(() => {
    if (Date.now() - editedAt.current > 2000) setRate(running);
  }, [running]);
  const send = async (ratePerSecond: number) => {
    const answer = await fetch("api/load", {
      method: "POST",
      headers: { "content-type": "application/json", ...bearer() },
      body: JSON.stringify({ ratePerSecond }),
    }).catch((error: Error) => ({ ok: false, json: async () => ({ error: error.message }) }) as const);
    setProblem(answer.ok ? undefined : ((await answer.json()) as { error: string }).error);
  };
  const samples = props.load?.samples ?? [];
  const recent = samples.filter((s) => s.atMs >= props.nowMs - 5_000);
  return (
    <div class="load">
      <div class="load-controls">
        <label for="load-rate">Views per second (STRONG and EVENTUAL in turn)</label>
        <input
          id="load-rate"
          type="range"
          min={0}
          max={maxLoadRate}
          step={1}
          value={rate}
          disabled={!props.admin}
          onInput={(e) => {
            editedAt.current = Date.now();
            setRate(Number(e.currentTarget.value));
          }}
          onChange={(e) => void send(Number(e.currentTarget.value))}
        />
        <output for="load-rate" data-testid="load-rate">
          {rate === 0 ? "off" : `${rate}/s`}
        </output>
      </div>
      {!props.admin && <p class="note">Sign in as an admin to start the load (it reads alice's view).</p>}
      {problem !== undefined && <p class="error">{problem}</p>}
      <LatencyChart samples={samples} nowMs={props.nowMs} />
      <p class="legend">
        <span class="key strong">STRONG</span> <span class="key eventual">EVENTUAL</span>{" "}
        <span class="key degraded">degraded</span> <span class="key failed">failed</span>
      </p>
      <Shares samples={recent} />
      <h3>Latest views</h3>
      <ol class="recent">
        {samples.length === 0 ? (
          <li class="empty">{running === 0 ? "The load is off." : "No answers yet."}</li>
        ) : (
          samples
            .slice(-4)
            .reverse()
            .map((s) => (
              <li key={s.traceId}>
                <button type="button" onClick={() => props.onPickTrace(s.traceId)}>
                  {s.consistency} {formatMs(s.latencyMs)} {s.outcome}
                  {s.detail ? `: ${s.detail}` : ""}
                </button>
              </li>
            ))
        )}
      </ol>
    </div>
  );
}
