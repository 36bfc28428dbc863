import { ConnectError } from "@connectrpc/connect";
import { Consistency, Dependency, Fallback, type GetUserOrdersResponse } from "@shopmesh/sdk/userorders/v1";
import { useState } from "preact/hooks";
import { sampledTraceparent, userOrders } from "./clients.js";
import { formatMs } from "./live-summary.js";

type Answer =
  | { kind: "view"; view: GetUserOrdersResponse; latencyMs: number; traceId: string }
  | { kind: "error"; message: string; latencyMs: number; traceId: string };

const durationMs = (d: { seconds: bigint; nanos: number } | undefined) =>
  d === undefined ? 0 : Number(d.seconds) * 1000 + d.nanos / 1e6;
const money = (m: { currencyCode: string; minorUnits: bigint } | undefined) =>
  m === undefined ? "–" : `${(Number(m.minorUnits) / 100).toFixed(2)} ${m.currencyCode}`;

function ViewAnswer({
  label,
  answer,
  onTrace,
}: {
  label: string;
  answer: Answer | undefined;
  onTrace: (id: string) => void;
}) {
  return (
    <section class="view-answer" aria-label={`${label} view`}>
      <h3>{label}</h3>
      {answer === undefined ? (
        <p class="empty">Not loaded.</p>
      ) : (
        <>
          <p>
            {answer.kind === "error" ? "Failed" : answer.view.degradations.length > 0 ? "Degraded" : "Full"} in{" "}
            {formatMs(answer.latencyMs)}{" "}
            <button type="button" onClick={() => onTrace(answer.traceId)}>
              Show its trace
            </button>
          </p>
          {answer.kind === "error" ? (
            <p class="error">{answer.message}</p>
          ) : (
            <>
              <ul class="degradations">
                {answer.view.degradations.map((d) => (
                  <li key={d.dependency}>
                    without {Dependency[d.dependency].toLowerCase()} ({d.code}): {Fallback[d.fallback]}
                  </li>
                ))}
                {answer.view.staleOrders !== undefined && (
                  <li>orders from a copy {formatMs(durationMs(answer.view.staleOrders.age))} old</li>
                )}
              </ul>
              <table>
                <caption>Time per dependency</caption>
                <tbody>
                  {answer.view.timings.length === 0 ? (
                    <tr>
                      <td>none called (answered from the projection)</td>
                    </tr>
                  ) : (
                    answer.view.timings.map((t) => (
                      <tr key={t.dependency}>
                        <th scope="row">{Dependency[t.dependency].toLowerCase()}</th>
                        <td>{formatMs(durationMs(t.duration))}</td>
                        <td>{t.code || "OK"}</td>
                        <td>
                          {t.attempts} attempt{t.attempts === 1 ? "" : "s"}
                        </td>
                      </tr>
                    ))
                  )}
                </tbody>
              </table>
              <p>
                {answer.view.orders.length} order{answer.view.orders.length === 1 ? "" : "s"}
                {answer.view.profile ? ` for ${answer.view.profile.displayName}` : " (no profile)"}
              </p>
              <ul class="orders">
                {answer.view.orders.slice(0, 4).map((order) => (
                  <li key={order.orderId}>
                    {money(order.total)}:{" "}
                    {order.lines
                      .map((l) => `${l.quantity} × ${l.product?.name ?? `${l.productId.slice(0, 8)}… (no details)`}`)
                      .join(", ")}
                  </li>
                ))}
              </ul>
            </>
          )}
        </>
      )}
    </section>
  );
}

/** The signed-in person's own view, asked for both ways, as the contract answers it. */
export function MyOrders({ userId, onTrace }: { userId: string | undefined; onTrace: (id: string) => void }) {
  const [strong, setStrong] = useState<Answer | undefined>();
  const [eventual, setEventual] = useState<Answer | undefined>();
  const [busy, setBusy] = useState(false);
  if (userId === undefined)
    return <p class="empty">Sign in (alice@shopmesh.local / alice-password) to see your orders.</p>;
  const ask = async (consistency: Consistency): Promise<Answer> => {
    const { traceparent, traceId } = sampledTraceparent();
    const started = performance.now();
    try {
      const view = await userOrders.getUserOrders(
        { userId, consistency },
        { timeoutMs: 2000, headers: { traceparent } },
      );
      return { kind: "view", view, latencyMs: performance.now() - started, traceId };
    } catch (error) {
      return {
        kind: "error",
        message: ConnectError.from(error).message,
        latencyMs: performance.now() - started,
        traceId,
      };
    }
  };
  const refresh = async () => {
    setBusy(true);
    const [s, e] = await Promise.all([ask(Consistency.STRONG), ask(Consistency.EVENTUAL)]);
    setStrong(s);
    setEventual(e);
    setBusy(false);
  };
  return (
    <div class="my-orders">
      <button type="button" onClick={() => void refresh()} disabled={busy}>
        {busy ? "Loading…" : "Load my view both ways"}
      </button>
      <div class="views">
        <ViewAnswer label="STRONG" answer={strong} onTrace={onTrace} />
        <ViewAnswer label="EVENTUAL" answer={eventual} onTrace={onTrace} />
      </div>
    </div>
  );
}
