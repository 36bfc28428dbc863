// `shopmesh bench` (also `npm run bench`): closed-loop load on each service's
// main read and on GetUserOrders, beside a bare grpc-js baseline measured in
// the same run; writes reports/bench.json and reports/bench.md.
import { rmSync } from "node:fs";
import { cpus, platform, release, totalmem } from "node:os";
import { relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { BenchReport, RssResult, StepResult } from "./bench-results.js";
import { benchUsage, knownTargets, readBenchSettings, UsageRequested, type BenchSettings } from "./bench-settings.js";
import { nodeVersionOf, serviceNodeFlags } from "../mesh/local-mesh.js";
import { busyPortLines } from "../mesh/port-check.js";
import {
  BenchMesh,
  benchPorts,
  busyPorts,
  connectNodeProcesses,
  newBenchDataDir,
  productsVariants,
  type BenchProcessName,
} from "./bench-mesh.js";
import { waitForProjection } from "../mesh/projection-progress.js";
import { seedBenchData } from "./bench-seed.js";
import { createBenchTargets, variantKey, type BenchTarget } from "./bench-targets.js";
import { renderSummary, writeReport } from "./report-writer.js";
import { RssSampler } from "./rss-sampler.js";
import { runLevel } from "./step-runner.js";
import { checkTargets } from "./target-checks.js";

const cpuProfilePreload = fileURLToPath(new URL("./cpu-profile-preload.mjs", import.meta.url));
const say = (line: string) => process.stdout.write(`${line}\n`);
const mib = (bytes: number) => bytes / (1024 * 1024);

/** The rows measured again on another Node.js (--other-node): the baselines and the mesh's own reads. */
const otherNodeTargets = [
  "bare",
  "bare.tls",
  "users.GetUser",
  "products.GetProduct",
  "orders.ListOrders",
  "user-orders.GetUserOrders",
  "user-orders.GetUserOrders.eventual",
] as const satisfies readonly BenchTarget["key"][];

/**
 * Seeds a started bench mesh, makes the targets `wanted` picks (the bare
 * rows always), waits for the projection when EVENTUAL views are loaded,
 * and runs the levels while sampling every process's RSS.
 */
async function seedAndMeasure(
  running: BenchMesh,
  settings: BenchSettings,
  levels: number[],
  wanted: (target: BenchTarget) => boolean,
) {
  const data = await seedBenchData(
    { users: running.address("users"), products: running.address("products"), orders: running.address("orders") },
    { products: settings.products, orders: settings.orders },
    (service) => running.clientTls(service),
  );
  say(`  seeded ${data.productIds.length} products and ${data.orderIds.length} orders`);
  const created = createBenchTargets(
    (name) => running.address(name),
    data,
    settings.connections,
    (name) => running.clientTls(name),
    running.bareOverTls(),
    [...running.variants.keys()],
    running.connectNode.size > 0,
  );
  try {
    const targets = created.targets.filter(
      (target) => target.key === "bare" || target.key === "bare.tls" || wanted(target),
    );
    if (targets.some((target) => target.key === "user-orders.GetUserOrders.eventual")) {
      // Measured on the same rows as STRONG: wait until the projection holds everything seeded.
      const wait = await waitForProjection({
        target: running.address("user-orders"),
        tls: running.clientTls("user-orders"),
        token: data.customer.token,
        userId: data.customer.userId,
        timeoutMs: 60_000,
        intervalMs: 50,
      });
      if (!wait.caughtUp) throw new Error("user-orders' projection did not catch up with the seeded data within 60 s");
      say("  user-orders' projection has caught up");
    }
    const pids = running.pids();
    const sampler = new RssSampler(pids);
    sampler.start();
    const steps: StepResult[] = [];
    for (const concurrency of levels) {
      const results = await runLevel(targets, pids, {
        concurrency,
        warmupMs: settings.warmupMs,
        durationMs: settings.durationMs,
        sliceMs: settings.sliceMs,
      });
      steps.push(...results);
      say(
        `  ${String(concurrency).padStart(4)} in flight: ${results.map((step) => `${step.target} ${Math.round(step.callsPerSecond)}/s`).join(", ")}`,
      );
    }
    return { data, steps, peaks: sampler.stop(), close: created.close };
  } catch (error) {
    created.close();
    throw error;
  }
}

/** Runs `shopmesh bench`; returns the exit code. */
export async function bench(args: string[]): Promise<number> {
  let settings: BenchSettings;
  try {
    settings = readBenchSettings(args);
  } catch (error) {
    if (error instanceof UsageRequested) {
      say(benchUsage);
      return 0;
    }
    process.stderr.write(
      `shopmesh bench: ${error instanceof Error ? error.message : String(error)}\n\n${benchUsage}\n`,
    );
    return 2;
  }

  const ports = benchPorts(settings.portBase);
  const busy = await busyPorts(ports);
  if (busy.length > 0) {
    for (const line of busyPortLines(busy, "--port-base <first of fourteen ports>"))
      process.stderr.write(`shopmesh bench: ${line}\n`);
    return 1;
  }

  const cpu = cpus();
  const dataDir = newBenchDataDir();
  let mesh: BenchMesh | undefined;
  let closeTargets = (): void => {};
  const cleanUp = async (signal: NodeJS.Signals) => {
    closeTargets();
    await mesh?.stop(signal);
    rmSync(dataDir, { recursive: true, force: true });
  };
  const onInterrupt = () => {
    process.stderr.write("\nshopmesh bench: interrupted; stopping the services\n");
    void cleanUp("SIGKILL").finally(() => process.exit(130));
  };
  process.once("SIGINT", onInterrupt);
  process.once("SIGTERM", onInterrupt);

  /**
   * The bare baseline and the four services' main reads once more, at the
   * highest level, with every server process on another Node.js: the
   * first mesh stops (its ports are reused), a fresh one starts and is seeded
   * the same way, and its rows are read against its own bare server.
   */
  const measureOnOtherNode = async (node: NonNullable<BenchSettings["otherNode"]>, measuredHere: StepResult[]) => {
    // process.version's form ("v24.18.1"), as machine.node is.
    const version = `v${nodeVersionOf(node.path)}`;
    closeTargets();
    closeTargets = () => {};
    await mesh?.stop();
    mesh = undefined;
    const top = Math.max(...settings.concurrency);
    // The rows of both halves are the same: the main reads this run loaded.
    const keys = otherNodeTargets.filter((key) => measuredHere.some((step) => step.target === key));
    say(`  again on Node.js ${version}, ${top} in flight: ${keys.join(", ")}`);
    mesh = await BenchMesh.start(ports, newBenchDataDir(), { node });
    const measured = await seedAndMeasure(mesh, settings, [top], (target) =>
      (keys as readonly string[]).includes(target.key),
    );
    closeTargets = measured.close;
    const barePeak = measured.peaks.get("bare-baseline")?.peakBytes ?? 0;
    const rss: RssResult[] = (["users", "products", "orders", "user-orders", "bare-baseline"] as const).flatMap(
      (name) => {
        const peak = measured.peaks.get(name);
        return peak === undefined
          ? []
          : [
              {
                process: name,
                startMiB: mib(peak.startBytes),
                peakMiB: mib(peak.peakBytes),
                ratioToBaseline: barePeak > 0 ? peak.peakBytes / barePeak : 0,
              },
            ];
      },
    );
    // The bench client stays on this Node.js: its CPU per call prices another release's sent calls only when it is the same.
    return {
      node: version,
      serviceNodeFlags: serviceNodeFlags(version),
      steps: measured.steps,
      rss,
      checks: checkTargets(measured.steps, rss, { priceCallsAlone: version === process.version, cores: cpu.length }),
    };
  };

  try {
    const named = productsVariants.filter(
      (variant) => settings.targets.length === 0 || settings.targets.includes(variantKey(variant)),
    );
    // Every variant is read against the control, so the control runs whenever one does.
    const variants =
      named.length === 0 ? [] : productsVariants.filter((v) => v === "products-control" || named.includes(v));
    const withConnectNode =
      settings.targets.length === 0 || settings.targets.some((target) => target.endsWith(".connect-node"));
    const levels = settings.concurrency.length;
    // The two bare rows (plaintext and TLS) run beside whatever is loaded, and the control beside a variant.
    const loaded = new Set([...settings.targets, ...variants.map(variantKey)]);
    const targetCount = (settings.targets.length === 0 ? knownTargets.length : loaded.size) + 2;
    const otherNodeSteps = settings.otherNode === undefined ? 0 : otherNodeTargets.length;
    const estimate = Math.round(
      ((levels * targetCount + otherNodeSteps) * (settings.durationMs + settings.warmupMs)) / 1000,
    );
    say(
      `shopmesh bench: ${levels} level(s) (${settings.concurrency.join(", ")} in flight) × ${targetCount} targets, about ${estimate} s of load after start-up`,
    );
    const profiled = Object.fromEntries(
      settings.cpuProf.map((name) => [
        name,
        // Node 20 refuses --cpu-prof in NODE_OPTIONS; the preload starts the same profiler through node:inspector.
        {
          NODE_OPTIONS: `--import ${pathToFileURL(cpuProfilePreload).href}`,
          CPU_PROFILE_DIR: settings.cpuProfDir,
          CPU_PROFILE_NAME: name,
        },
      ]),
    ) as Partial<Record<BenchProcessName, Record<string, string>>>;
    if (settings.cpuProf.length > 0)
      say(`  CPU profiles of ${settings.cpuProf.join(", ")} go to ${settings.cpuProfDir} when they stop`);
    mesh = await BenchMesh.start(ports, dataDir, { extraEnv: profiled, variants, withConnectNode });
    const running = mesh;
    say(
      `  mesh up: users ${ports.users}, products ${ports.products}, orders ${ports.orders}, user-orders ${ports["user-orders"]}, bare baseline ${ports["bare-baseline"]}`,
    );
    const first = await seedAndMeasure(
      running,
      settings,
      settings.concurrency,
      (target) =>
        settings.targets.length === 0 ||
        settings.targets.includes(target.key) ||
        // A variant started is loaded: the control, too, when only a variant was named.
        (variants as readonly string[]).includes(target.process),
    );
    closeTargets = first.close;
    const { data, steps, peaks } = first;
    const otlp = await running.otlpSinkStats();

    const barePeak = peaks.get("bare-baseline")?.peakBytes ?? 0;
    const order: BenchProcessName[] = [
      "users",
      "products",
      "orders",
      "user-orders",
      ...variants,
      ...(withConnectNode ? (Object.keys(connectNodeProcesses) as (keyof typeof connectNodeProcesses)[]) : []),
      "bare-baseline",
    ];
    const rss: RssResult[] = order.flatMap((name) => {
      const peak = peaks.get(name);
      if (!peak) return [];
      return [
        {
          process: name,
          startMiB: mib(peak.startBytes),
          peakMiB: mib(peak.peakBytes),
          ratioToBaseline: barePeak > 0 ? peak.peakBytes / barePeak : 0,
        },
      ];
    });
    const otherNode =
      settings.otherNode === undefined ? undefined : await measureOnOtherNode(settings.otherNode, steps);
    const report: BenchReport = {
      generatedAt: new Date().toISOString(),
      command: ["shopmesh", "bench", ...args].join(" "),
      machine: {
        cpuModel: cpu[0]?.model.trim() ?? "unknown",
        cpus: cpu.length,
        totalMemoryGiB: totalmem() / 1024 ** 3,
        platform: platform(),
        release: release(),
        node: process.version,
      },
      settings: {
        concurrency: settings.concurrency,
        connections: settings.connections,
        durationSeconds: settings.durationMs / 1000,
        warmupSeconds: settings.warmupMs / 1000,
        sliceSeconds: settings.sliceMs / 1000,
        quick: settings.quick,
        portBase: settings.portBase,
        serviceNodeFlags: serviceNodeFlags(process.versions.node),
      },
      seeded: { products: data.productIds.length, orders: data.orderIds.length, linesPerOrder: "2-3" },
      steps,
      rss,
      ...(otlp === undefined ? {} : { otlpExport: otlp }),
      ...(otherNode === undefined ? {} : { otherNode }),
      checks: checkTargets(steps, rss, { priceCallsAlone: true, cores: cpu.length }),
    };
    const paths = writeReport(report, settings.outDir);
    const nearby = (path: string) =>
      relative(process.cwd(), path).startsWith("..") ? path : relative(process.cwd(), path);
    const shown = { json: nearby(paths.json), markdown: nearby(paths.markdown) };
    say("");
    process.stdout.write(renderSummary(report, shown));
    return 0;
  } catch (error) {
    process.stderr.write(`shopmesh bench: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    process.off("SIGINT", onInterrupt);
    process.off("SIGTERM", onInterrupt);
    await cleanUp("SIGTERM");
  }
}
