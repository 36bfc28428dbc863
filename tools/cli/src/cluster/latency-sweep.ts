// The experiment's latency and availability questions on the multi-host
// mesh: how much slower a STRONG view gets when products answers later, and
// how many views degrade when products is unavailable part of the time, with
// the fault put on the network path (a proxy between user-orders-a and
// products that delays, or takes the link down for a share of every second)
// beside the same fault injected inside products (its fault injection: a
// delay, or that share of calls failed). Writes reports/multi-host-sweep.md.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { runLine, thisMachine, type RunMachine } from "../report-files.js";
import { ClientSession } from "./client-session.js";
import { tearDownOnSignal, type HeldCluster } from "./teardown-on-signal.js";
import { Cluster } from "./cluster.js";
import { prepare } from "./scenarios.js";

const run = promisify(execFile);
const proxyEntry = fileURLToPath(new URL("./delay-proxy-main.ts", import.meta.url));
const cliBin = fileURLToPath(new URL("../../bin/shopmesh.mjs", import.meta.url));
const proxyPort = 50062;
const controlPort = 50063;

interface Latencies {
  views: number;
  min: number;
  p50: number;
  p90: number;
  max: number;
  degraded: number;
  /** Views that failed, by status code. */
  failed: Record<string, number>;
}

export interface SweepReport {
  command: string;
  generatedAt: string;
  machine: RunMachine;
  viewsPerPoint: number;
  points: { delayMs: number; network: Latencies; inService: Latencies }[];
  outages: {
    periodMs: number;
    paceMs: number;
    points: { share: number; network: Latencies; inService: Latencies }[];
  };
}

export async function runLatencySweep(options: {
  command: string;
  delaysMs: number[];
  viewsPerPoint: number;
  /** Shares of the time products is unavailable (0 < share ≤ 0.9), each measured both ways. */
  outageShares: number[];
  /** STRONG views per outage point, `outagePaceMs` apart so that they spread over several periods. */
  outageViews: number;
  outagePaceMs?: number;
  outagePeriodMs?: number;
  progress?: (line: string) => void;
  natsServer?: string;
}): Promise<SweepReport> {
  const outagePeriodMs = options.outagePeriodMs ?? 1000;
  const outagePaceMs = options.outagePaceMs ?? 50;
  const progress = options.progress ?? (() => undefined);
  let client: ClientSession | undefined;
  const held: HeldCluster = {};
  const stopListening = tearDownOnSignal(held, progress);
  try {
    const creating = Cluster.create({
      progress,
      natsServer: options.natsServer,
      serviceEnv: {
        // user-orders-a reaches products only through the proxy on its own host.
        "user-orders-a": { PRODUCTS_TARGET: `127.0.0.1:${proxyPort}` },
        products: { FAULT_INJECTION: "on" },
      },
    });
    held.creating = creating;
    const cluster = await creating;
    await cluster.launchNode("user-orders-a", "delay-proxy", proxyEntry, {
      LISTEN: `127.0.0.1:${proxyPort}`,
      UPSTREAM: "products:50052",
      CONTROL: `${cluster.host("user-orders-a").address}:${controlPort}`,
    });
    await cluster.start();
    client = held.client = await ClientSession.start(cluster);
    const setup = await prepare(client);
    /** STRONG views from user-orders-a, one after another (`paceMs` apart). */
    const views = (count = options.viewsPerPoint, paceMs?: number) =>
      client!.call("viewLatencies", {
        host: "user-orders-a",
        token: setup.aliceToken,
        userId: setup.aliceId,
        count,
        paceMs,
      });
    const inProducts = async (args: string[]) => {
      // The admin listener answers on loopback only, so the command runs on products' host.
      await run("ip", [
        "netns",
        "exec",
        cluster.host("products").namespace,
        process.execPath,
        cliBin,
        "chaos",
        "products",
        ...args,
      ]);
    };
    const control = `user-orders-a:${controlPort}`;
    await views(); // connections and JIT warm, not counted
    const points: SweepReport["points"] = [];
    for (const delayMs of options.delaysMs) {
      progress(`delay ${delayMs} ms`);
      await client.call("setProxyDelay", { control, ms: delayMs });
      const network = await views();
      await client.call("setProxyDelay", { control, ms: 0 });
      await inProducts(delayMs === 0 ? ["--clear"] : ["--latency", `${delayMs}ms`]);
      const inService = await views();
      await inProducts(["--clear"]);
      points.push({ delayMs, network, inService });
    }
    // Each outage point starts with the breaker closed and products answering: the last point's
    // breaker may still be open after the fault is gone.
    const untilHealthy = async () => {
      for (let attempt = 0; attempt < 100; attempt++) {
        const view = await views(1);
        if (view.degraded === 0 && Object.keys(view.failed).length === 0) return;
        await sleep(200);
      }
      throw new Error("user-orders-a's views stayed degraded for 20 s after the fault was cleared");
    };
    const outagePoints: SweepReport["outages"]["points"] = [];
    for (const share of options.outageShares) {
      progress(`products unavailable ${Math.round(share * 100)} % of the time`);
      await untilHealthy();
      await client.call("setProxyOutage", { control, share, periodMs: outagePeriodMs });
      const network = await views(options.outageViews, outagePaceMs);
      await client.call("setProxyOutage", { control, share: 0, periodMs: outagePeriodMs });
      await untilHealthy();
      await inProducts(["--error-rate", String(share)]);
      const inService = await views(options.outageViews, outagePaceMs);
      await inProducts(["--clear"]);
      outagePoints.push({ share, network, inService });
    }
    return {
      command: options.command,
      generatedAt: new Date().toISOString(),
      machine: thisMachine(),
      viewsPerPoint: options.viewsPerPoint,
      points,
      outages: { periodMs: outagePeriodMs, paceMs: outagePaceMs, points: outagePoints },
    };
  } finally {
    stopListening();
    await client?.close();
    await (await held.creating?.catch(() => undefined))?.down();
  }
}

export function renderSweepReport(report: SweepReport): string {
  const ms = (value: number) => value.toFixed(1);
  const base = report.points.find((p) => p.delayMs === 0);
  const rows = report.points
    .map((p) => {
      const extra = (l: Latencies) => (base ? ms(l.p50 - (base.network.p50 + base.inService.p50) / 2) : "");
      return `| ${p.delayMs} | ${ms(p.network.min)} | ${ms(p.network.p50)} | ${ms(p.network.p90)} | ${ms(p.network.max)} | ${extra(p.network)} | ${ms(p.inService.min)} | ${ms(p.inService.p50)} | ${ms(p.inService.p90)} | ${ms(p.inService.max)} | ${extra(p.inService)} | ${p.network.degraded} / ${p.inService.degraded} |`;
    })
    .join("\n");
  return `# Multi-host mesh: latency on the network path and in the service

${runLine(report)}

alice's STRONG view (one BatchGetProducts call to products per view), read ${report.viewsPerPoint} times one after another from user-orders-a for each delay, on the multi-host mesh that reports/multi-host.md describes. **Network path**: user-orders-a reaches products through a TCP proxy on its own host that holds back every chunk coming from products for the delay (TLS runs end to end through it). **In the service**: the proxy passes at once and products adds the same delay to its calls (\`shopmesh chaos products --latency\`, run on products' host, where its admin listener is).

| delay ms | network min ms | p50 | p90 | max | p50 added | in-service min ms | p50 | p90 | max | p50 added | degraded (network / in-service) |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
${rows}

"p50 added" is the median minus the median without delay (the mean of both ways at 0). On a loaded machine the medians wander by tens of milliseconds from one setting to the next; the minimum cannot: no view can answer before products' delayed answer arrives. Either way the view waits for products' answer, within the call's timeout; what the network path adds beyond the service's own delay shows as the difference between the two "p50 added" columns at the same delay.

## Products unavailable part of the time

${renderOutages(report.outages)}
`;
}

function renderOutages(outages: SweepReport["outages"]): string {
  const share = (count: number, of: number) => `${Math.round((100 * count) / of)} %`;
  const failed = (l: Latencies) => Object.values(l.failed).reduce((a, b) => a + b, 0);
  const rows = outages.points
    .map(
      (p) =>
        `| ${Math.round(p.share * 100)} % | ${share(p.network.degraded, p.network.views)} | ${failed(p.network)} | ${p.network.p50.toFixed(1)} | ${p.network.p90.toFixed(1)} | ${share(p.inService.degraded, p.inService.views)} | ${failed(p.inService)} | ${p.inService.p50.toFixed(1)} | ${p.inService.p90.toFixed(1)} |`,
    )
    .join("\n");
  return `alice's STRONG view read from user-orders-a ${outages.points[0]?.network.views ?? 0} times per point, ${outages.paceMs} ms apart, while products is unavailable for a share of the time. **Network path**: the proxy takes the link down for that share of every ${outages.periodMs / 1000} s, resetting the open connection and refusing new ones, then lets it up again (a flapping link). **In the service**: the link stays up and products fails that share of its calls with UNAVAILABLE (\`shopmesh chaos products --error-rate\`). Each point starts with user-orders-a answering whole views again.

| unavailable | network: degraded views | failed | p50 ms | p90 ms | in-service: degraded views | failed | p50 ms | p90 ms |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows}

The same share of unavailability is not the same fault. Failures inside the service come call by call, independently: user-orders sends the idempotent BatchGetProducts up to three times (RETRY_ATTEMPTS 2), so a view degrades only when all three fail, about the share cubed. An outage of the link fails every attempt until it ends, and once five calls in a row have failed (BREAKER_FAILURES) the breaker refuses products for BREAKER_COOLDOWN (2 s) after the link is back: when the outages come closer together than that, products stays cut off almost all the time. Neither way fails a view: products' part is optional, and the view answers without it, marked degraded.
`;
}
