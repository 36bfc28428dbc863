// The experiment's latency question on the multi-host mesh: how much slower
// a STRONG view gets when products answers later, with the delay put on the
// network path (a delay proxy between user-orders-a and products) beside the
// same delay injected inside products (its fault injection). Writes
// reports/multi-host-sweep.md.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
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
  min: number;
  p50: number;
  p90: number;
  max: number;
  degraded: number;
}

export interface SweepReport {
  command: string;
  generatedAt: string;
  machine: RunMachine;
  viewsPerPoint: number;
  points: { delayMs: number; network: Latencies; inService: Latencies }[];
}

export async function runLatencySweep(options: {
  command: string;
  delaysMs: number[];
  viewsPerPoint: number;
  progress?: (line: string) => void;
  natsServer?: string;
}): Promise<SweepReport> {
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
    const views = () =>
      client!.call("viewLatencies", {
        host: "user-orders-a",
        token: setup.aliceToken,
        userId: setup.aliceId,
        count: options.viewsPerPoint,
      });
    const inProducts = async (delayMs: number) => {
      const args = delayMs === 0 ? ["--clear"] : ["--latency", `${delayMs}ms`];
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
      await inProducts(delayMs);
      const inService = await views();
      await inProducts(0);
      points.push({ delayMs, network, inService });
    }
    return {
      command: options.command,
      generatedAt: new Date().toISOString(),
      machine: thisMachine(),
      viewsPerPoint: options.viewsPerPoint,
      points,
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
`;
}
