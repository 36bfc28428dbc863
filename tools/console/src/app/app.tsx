import { useEffect, useRef, useState } from "preact/hooks";
import { ChaosPanel } from "./chaos-panel.js";
import { useLiveSummary } from "./live-summary.js";
import { LoadPanel } from "./load-panel.js";
import { MyOrders } from "./my-orders.js";
import { type SignedIn, SignIn } from "./sign-in.js";
import { Topology } from "./topology.js";
import { Waterfall } from "./waterfall.js";

export function App() {
  const { summary, connected } = useLiveSummary();
  const [who, setWho] = useState<SignedIn | undefined>();
  const [pinnedTrace, setPinnedTrace] = useState<string | null>(null);
  // The newest view's trace, changed at most every 2 s so that the waterfall can be read; a view
  // that ended a moment ago, since its spans reach the console a little after its answer.
  const [latestTrace, setLatestTrace] = useState<string | null>(null);
  const switchedAt = useRef(0);
  useEffect(() => {
    if (summary === undefined || summary.atMs - switchedAt.current < 2000) return;
    const settled = summary.load.samples.filter((s) => s.atMs <= summary.atMs - 300).at(-1)?.traceId;
    const next = settled ?? summary.latestTraceId;
    if (next !== null && next !== latestTrace) {
      switchedAt.current = summary.atMs;
      setLatestTrace(next);
    }
  }, [summary]);
  const up = (service: string) => summary?.services.find((s) => s.service === service)?.up ?? false;
  return (
    <>
      <header>
        <h1>shopmesh console</h1>
        <p class={connected ? "link ok" : "link lost"} role="status" data-testid="link">
          {connected ? (summary === undefined ? "connecting…" : "live") : "console server unreachable: retrying"}
        </p>
        <SignIn who={who} onChange={setWho} />
      </header>
      <main>
        <section class="panel topology-panel" aria-labelledby="topology-title">
          <h2 id="topology-title">Mesh</h2>
          <Topology summary={summary} />
        </section>
        <section class="panel chaos-panel" aria-labelledby="chaos-title">
          <h2 id="chaos-title">Faults</h2>
          <ChaosPanel admin={who?.admin ?? false} up={up} />
        </section>
        <section class="panel load-panel" aria-labelledby="load-title">
          <h2 id="load-title">Steady load</h2>
          <LoadPanel
            load={summary?.load}
            nowMs={summary?.atMs ?? 0}
            admin={who?.admin ?? false}
            onPickTrace={setPinnedTrace}
          />
        </section>
        <section class="panel trace-panel" aria-labelledby="trace-title">
          <h2 id="trace-title">Trace</h2>
          <Waterfall
            traceId={pinnedTrace ?? latestTrace}
            pinned={pinnedTrace !== null}
            onFollow={() => setPinnedTrace(null)}
          />
        </section>
        <section class="panel orders-panel" aria-labelledby="orders-title">
          <h2 id="orders-title">My orders</h2>
          <MyOrders userId={who?.userId} onTrace={setPinnedTrace} />
        </section>
      </main>
    </>
  );
}
