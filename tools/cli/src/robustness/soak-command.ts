// `shopmesh soak`: a mixed load at about half of capacity on a mesh of its
// own, with faults switched on and off on a schedule; per-window figures,
// memory trends per process, unexpected errors and lost writes.
import { thisMachine } from "../report-files.js";
import { relative } from "node:path";
import type { ServiceName } from "../mesh/local-mesh.js";
import { sourceHeads, waitForProjection } from "../mesh/projection-progress.js";
import { closedLoop } from "../bench/load-loop.js";
import {
  faultDescriptions,
  faultsBetween,
  isExplained,
  soakSchedule,
  type FaultKind,
  type FaultPhase,
} from "./fault-schedule.js";
import { LoadMesh, type FaultSpec } from "./load-mesh.js";
import { leastSquaresSlope, sumTallies } from "./load-statistics.js";
import { openLoop } from "./open-loop.js";
import { callDeadlineMs, SoakMix } from "./soak-mix.js";
import { writeSoakReport, type ProcessMemory, type SoakReport, type WriteCheck } from "./soak-report.js";
import { readSoakSettings, soakUsage, UsageRequested, type SoakSettings } from "./soak-settings.js";
import { WindowAccumulator, type WindowSummary } from "./soak-windows.js";

const say = (line: string): void => void process.stdout.write(`${line}\n`);
const mib = (bytes: number) => bytes / (1024 * 1024);
/** A fault counts for a call from this long before it was set until this long after it was cleared. */
const faultMarginMs = 250;
/** Calls allowed to wait at once; enough for the rate times the deadline at any rate the probe gives on a small machine. */
const maxInFlight = 2_000;

/** The admin calls that switch each fault on. */
const faultSettings: Record<FaultKind, { service: "users" | "products"; faults: FaultSpec[] }> = {
  "products-latency": {
    service: "products",
    faults: ["GetProduct", "BatchGetProducts"].map((method) => ({ method, latencyMs: 100 })),
  },
  "users-errors": {
    service: "users",
    faults: ["SignIn", "GetUser"].map((method) => ({ method, errorRate: 0.2, errorCode: "UNAVAILABLE" })),
  },
  "products-hang": {
    service: "products",
    faults: ["GetProduct", "BatchGetProducts"].map((method) => ({ method, hang: true })),
  },
};

/** Runs `shopmesh soak`; returns the exit code. */
export async function soak(args: string[]): Promise<number> {
  let settings: SoakSettings;
  try {
    settings = readSoakSettings(args);
  } catch (error) {
    if (error instanceof UsageRequested) {
      say(soakUsage);
      return 0;
    }
    process.stderr.write(`shopmesh soak: ${error instanceof Error ? error.message : String(error)}\n\n${soakUsage}\n`);
    return 2;
  }

  let mesh: LoadMesh | undefined;
  const onInterrupt = () => {
    process.stderr.write("\nshopmesh soak: interrupted; stopping the services\n");
    void (mesh?.stop("SIGKILL") ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once("SIGINT", onInterrupt);
  process.once("SIGTERM", onInterrupt);
  const runStarted = performance.now();
  try {
    say(
      `shopmesh soak: ${formatDuration(settings.durationMs)} of mixed load, a report line every ${formatDuration(settings.windowMs)}`,
    );
    mesh = await LoadMesh.start({ tokenTtl: `${Math.ceil(settings.durationMs / 60_000) + 60}m`, faultInjection: true });
    const running = mesh;
    const mix = await SoakMix.seed(running, { products: settings.products, customers: settings.customers });
    const first = mix.customers[0]!;
    const heads = await sourceHeads(running);
    const caughtUp = await waitForProjection({
      target: running.address("user-orders"),
      tls: running.clientTls("user-orders"),
      token: first.token,
      userId: first.userId,
      timeoutMs: 30_000,
      heads,
    });
    if (!caughtUp.caughtUp)
      throw new Error("user-orders' projection did not catch up with the seeded data within 30 s");
    say(
      `  mesh up and seeded in ${formatDuration(Math.round(performance.now() - runStarted))}: ${settings.products} products, ${settings.customers} customers with 2 orders each`,
    );

    let rate = settings.rate;
    let capacity: number | undefined;
    if (rate === undefined) {
      const probeCall = async () => void (await mix.run(mix.nextOperation()));
      await closedLoop(probeCall, 16, 1_000); // warm-up: connections, code paths
      const probe = await closedLoop(probeCall, 16, settings.probeMs);
      capacity = (probe.calls / probe.elapsedMs) * 1000;
      rate = Math.max(2, Math.round(capacity / 2));
      say(
        `  capacity probe: ${Math.round(capacity)} calls/s with 16 in flight for ${formatDuration(settings.probeMs)}; load at ${rate} calls/s`,
      );
    } else {
      say(`  load at ${rate} calls/s (--rate)`);
    }

    const result = await runLoad(running, mix, settings, rate);
    const writes = await checkWrites(running, mix);
    say(
      `  writes: ${writes.acknowledged} acknowledged, ${writes.missingFromOrders} missing from orders, ${writes.missingFromView} missing from the EVENTUAL view, ${writes.duplicatedInView} there twice`,
    );

    const report: SoakReport = {
      generatedAt: new Date().toISOString(),
      command: ["shopmesh", "soak", ...args].join(" "),
      machine: thisMachine(),
      settings: {
        durationSeconds: settings.durationMs / 1000,
        windowSeconds: settings.windowMs / 1000,
        rate,
        rateFrom: settings.rate === undefined ? "probe" : "--rate",
        ...(capacity === undefined ? {} : { probedCapacity: capacity, probeSeconds: settings.probeMs / 1000 }),
        clientDeadlineMs: callDeadlineMs,
        products: settings.products,
        customers: settings.customers,
      },
      schedule: result.applied.map((phase) => ({
        kind: phase.kind,
        description: faultDescriptions[phase.kind],
        fromSeconds: phase.fromMs / 1000,
        toSeconds: phase.toMs / 1000,
      })),
      windows: result.windows,
      totals: {
        calls: result.windows.reduce((sum, window) => sum + window.calls, 0),
        skipped: result.skipped,
        degraded: result.windows.reduce((sum, window) => sum + window.degraded, 0),
        errors: sumTallies(result.windows.map((window) => window.errors)) as Record<string, number>,
        unexpected: result.unexpected.size === 0 ? 0 : [...result.unexpected.values()].reduce((sum, n) => sum + n, 0),
        unexpectedByCall: Object.fromEntries(result.unexpected),
        unexpectedExamples: Object.fromEntries(result.unexpectedExamples),
      },
      memory: result.memory,
      slopeFromSeconds: result.slopeFromSeconds,
      writes,
      lostWrites: writes.missingFromOrders + writes.missingFromView + writes.duplicatedInView,
      exited: result.exited,
      verdict: "PASS",
    };
    if (report.totals.unexpected > 0 || report.lostWrites > 0 || report.exited.length > 0) report.verdict = "FAIL";
    const paths = writeSoakReport(report, settings.outDir);
    say("");
    say(summaryLines(report, paths).join("\n"));
    return report.verdict === "PASS" ? 0 : 1;
  } catch (error) {
    process.stderr.write(`shopmesh soak: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    process.off("SIGINT", onInterrupt);
    process.off("SIGTERM", onInterrupt);
    await mesh?.stop("SIGTERM");
  }
}

interface LoadResult {
  windows: WindowSummary[];
  skipped: number;
  /** Unexpected failures by "operation CODE". */
  unexpected: Map<string, number>;
  /** The first message of each kind of unexpected failure. */
  unexpectedExamples: Map<string, string>;
  applied: FaultPhase[];
  memory: Record<string, ProcessMemory>;
  slopeFromSeconds: number;
  exited: string[];
}

/** The timed part: open-loop load, the fault schedule, windows and memory samples. */
async function runLoad(mesh: LoadMesh, mix: SoakMix, settings: SoakSettings, rate: number): Promise<LoadResult> {
  const schedule = soakSchedule(settings.durationMs);
  // A remainder shorter than half a window joins the last window rather than make a window of its own.
  const windowCount = Math.max(1, Math.round(settings.durationMs / settings.windowMs));
  const accumulators = Array.from(
    { length: windowCount },
    (_, i) =>
      new WindowAccumulator(
        i,
        i * settings.windowMs,
        i === windowCount - 1 ? settings.durationMs : (i + 1) * settings.windowMs,
      ),
  );
  const windows: WindowSummary[] = [];
  const unexpected = new Map<string, number>();
  const unexpectedExamples = new Map<string, string>();
  const applied: FaultPhase[] = [];
  /** Faults on now: kind and when it was set. */
  const active = new Map<FaultKind, number>();
  const samples = new Map<ServiceName, { t: number; rss: number; heap?: number }[]>();
  const started = performance.now();
  const now = () => performance.now() - started;

  const sample = () => {
    const memory = mesh.memory();
    for (const [service, value] of memory) {
      const list = samples.get(service) ?? [];
      list.push({
        t: now() / 1000,
        rss: mib(value.rssBytes),
        heap: value.heapUsedBytes === undefined ? undefined : mib(value.heapUsedBytes),
      });
      samples.set(service, list);
    }
    return memory;
  };
  sample();
  const sampler = setInterval(sample, 1000);

  // The fault schedule: each phase switched on and off by its own timers; the times it was really in force are kept.
  const faultTimers: NodeJS.Timeout[] = [];
  const switching: Promise<void>[] = [];
  for (const phase of schedule) {
    const setting = faultSettings[phase.kind];
    faultTimers.push(
      setTimeout(() => {
        active.set(phase.kind, now());
        switching.push(
          mesh
            .setFaults(setting.service, setting.faults)
            .catch((error: unknown) => say(`  could not set ${phase.kind}: ${String(error)}`)),
        );
      }, phase.fromMs),
      setTimeout(() => {
        switching.push(
          mesh
            .setFaults(setting.service, [])
            .catch((error: unknown) => say(`  could not clear ${phase.kind}: ${String(error)}`))
            .then(() => {
              applied.push({ kind: phase.kind, fromMs: active.get(phase.kind) ?? phase.fromMs, toMs: now() });
              active.delete(phase.kind);
            }),
        );
      }, phase.toMs),
    );
  }

  // Windows are closed and printed as their end passes; the last one also takes the calls that end after the load.
  let nextWindow = 0;
  const closeWindow = () => {
    const accumulator = accumulators[nextWindow++]!;
    const summary = accumulator.summary(faultKindsIn(accumulator.fromMs, accumulator.toMs), sample());
    windows.push(summary);
    say(windowLine(summary, settings.windowMs));
  };
  const windowTimer = setInterval(() => {
    while (nextWindow < windowCount - 1 && now() >= accumulators[nextWindow]!.toMs) closeWindow();
  }, 100);

  const faultKindsIn = (fromMs: number, toMs: number): FaultKind[] => {
    const kinds = faultsBetween(applied, fromMs - faultMarginMs, toMs + faultMarginMs, {
      "products-hang": callDeadlineMs,
    });
    for (const [kind, since] of active) if (since <= toMs + faultMarginMs) kinds.add(kind);
    return [...kinds];
  };

  const loop = await openLoop({
    rate,
    durationMs: settings.durationMs,
    maxInFlight,
    call: async () => {
      const operation = mix.nextOperation();
      const callStarted = now();
      const outcome = await mix.run(operation);
      const ended = now();
      let surprising = false;
      if (outcome.code !== "OK" && !isExplained(operation, outcome.code, faultKindsIn(callStarted, ended))) {
        surprising = true;
        const key = `${operation} ${outcome.code}`;
        unexpected.set(key, (unexpected.get(key) ?? 0) + 1);
        if (!unexpectedExamples.has(key))
          unexpectedExamples.set(
            key,
            `${outcome.message ?? ""} (after ${Math.round(ended - callStarted)} ms, at ${(callStarted / 1000).toFixed(1)} s)`,
          );
      }
      const index = Math.min(windowCount - 1, Math.floor(ended / settings.windowMs));
      // A window already closed gets nothing more: such a late call counts in the next open one.
      accumulators[Math.max(index, nextWindow)]!.add(
        operation,
        outcome.code,
        ended - callStarted,
        surprising,
        outcome.degraded,
      );
    },
  });
  clearInterval(windowTimer);
  for (const timer of faultTimers) clearTimeout(timer);
  await Promise.all(switching);
  // Whatever was on when the load ended goes off.
  for (const [kind, since] of active) {
    await mesh.setFaults(faultSettings[kind].service, []);
    applied.push({ kind, fromMs: since, toMs: now() });
  }
  while (nextWindow < windowCount) closeWindow();
  clearInterval(sampler);
  applied.sort((a, b) => a.fromMs - b.fromMs);

  // Memory trends, leaving out the first window (start-up and warm-up) when there is more than one.
  const slopeFromSeconds = windowCount > 1 ? settings.windowMs / 1000 : 0;
  const memory: Record<string, ProcessMemory> = {};
  for (const [service, list] of samples) {
    const steady = list.filter((point) => point.t >= slopeFromSeconds);
    const heaps = steady.filter((point) => point.heap !== undefined);
    memory[service] = {
      firstRssMiB: list[0]!.rss,
      lastRssMiB: list.at(-1)!.rss,
      peakRssMiB: Math.max(...list.map((point) => point.rss)),
      rssSlopeMiBPerMinute: leastSquaresSlope(steady.map((point) => ({ x: point.t / 60, y: point.rss }))) ?? 0,
      lastHeapUsedMiB: list.at(-1)!.heap,
      heapSlopeMiBPerMinute: leastSquaresSlope(heaps.map((point) => ({ x: point.t / 60, y: point.heap! }))),
      samples: list.length,
    };
  }
  return {
    windows,
    skipped: loop.skipped,
    unexpected,
    unexpectedExamples,
    applied,
    memory,
    slopeFromSeconds,
    exited: mesh.exited(),
  };
}

/**
 * Every acknowledged order readable in orders (ListOrders of its customer)
 * and exactly once in the customer's EVENTUAL view, once the projection has
 * caught up with orders' head.
 */
async function checkWrites(mesh: LoadMesh, mix: SoakMix): Promise<WriteCheck> {
  const heads = await sourceHeads(mesh);
  const wait = await waitForProjection({
    target: mesh.address("user-orders"),
    tls: mesh.clientTls("user-orders"),
    token: mix.customers[0]!.token,
    userId: mix.customers[0]!.userId,
    timeoutMs: 60_000,
    heads,
    intervalMs: 50,
  });
  let missingFromOrders = 0;
  let missingFromView = 0;
  let duplicatedInView = 0;
  const examples: string[] = [];
  for (let index = 0; index < mix.customers.length; index++) {
    const mine = mix.acknowledged.filter((order) => order.customer === index).map((order) => order.orderId);
    const listed = new Set(await mix.listOrderIds(index));
    const viewed = await mix.eventualOrderIds(index);
    const counts = new Map<string, number>();
    for (const id of viewed) counts.set(id, (counts.get(id) ?? 0) + 1);
    for (const id of mine) {
      if (!listed.has(id)) {
        missingFromOrders++;
        if (examples.length < 10) examples.push(`${id}: not in orders`);
      }
      const seen = counts.get(id) ?? 0;
      if (seen === 0) {
        missingFromView++;
        if (examples.length < 10) examples.push(`${id}: not in the EVENTUAL view`);
      }
    }
    for (const [id, seen] of counts) {
      if (seen > 1) {
        duplicatedInView += seen - 1;
        if (examples.length < 10) examples.push(`${id}: ${seen} times in the EVENTUAL view`);
      }
    }
  }
  return {
    acknowledged: mix.acknowledged.length,
    projectionCaughtUp: wait.caughtUp,
    projectionWaitMs: wait.waitedMs,
    missingFromOrders,
    missingFromView,
    duplicatedInView,
    examples,
  };
}

function windowLine(window: WindowSummary, windowMs: number): string {
  const label =
    windowMs % 60_000 === 0
      ? `minute ${window.toSeconds / 60}`
      : `${Math.round(window.fromSeconds)}-${Math.round(window.toSeconds)} s`;
  const errors =
    Object.entries(window.errors)
      .map(([code, n]) => `${code} ${n}`)
      .join(", ") || "none";
  const memory = Object.entries(window.memory)
    .map(
      ([service, m]) =>
        `${service} ${Math.round(m!.rssMiB)}${m!.heapUsedMiB === undefined ? "" : `/${Math.round(m!.heapUsedMiB)}`}`,
    )
    .join(", ");
  return (
    `  ${label}: ${window.calls} calls (${window.callsPerSecond.toFixed(1)}/s), errors ${errors}${window.unexpected > 0 ? ` (${window.unexpected} UNEXPECTED)` : ""}, ` +
    `p50 ${window.p50Ms.toFixed(1)} ms, p99 ${window.p99Ms.toFixed(1)} ms; faults: ${window.faults.join(", ") || "none"}; RSS/heap MiB: ${memory}`
  );
}

function summaryLines(report: SoakReport, paths: { json: string; markdown: string }): string[] {
  const nearby = (path: string) =>
    relative(process.cwd(), path).startsWith("..") ? path : relative(process.cwd(), path);
  return [
    `soak ${report.verdict}: ${report.totals.calls} calls, ${report.totals.unexpected} unexpected errors, ${report.lostWrites} lost writes${report.exited.length > 0 ? `, exited: ${report.exited.join(", ")}` : ""}`,
    ...Object.entries(report.totals.unexpectedExamples).map(([call, example]) => `  unexpected ${call}: ${example}`),
    `RSS slope (MiB/min, from ${report.slopeFromSeconds} s): ${Object.entries(report.memory)
      .map(([service, m]) => `${service} ${m.rssSlopeMiBPerMinute.toFixed(2)}`)
      .join(", ")}`,
    `reports: ${nearby(paths.markdown)}, ${nearby(paths.json)}`,
  ];
}

function formatDuration(ms: number): string {
  return ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000} min` : `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s`;
}
