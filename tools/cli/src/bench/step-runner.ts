import type { StepResult } from "./bench-results.js";
import type { BenchProcessName } from "./bench-mesh.js";
import type { BenchTarget } from "./bench-targets.js";
import { closedLoop, newHistogram, type LatencyHistogram } from "./load-loop.js";
import { readCpuMicros } from "./rss-sampler.js";

/** What a target accumulated over the slices of one level. */
interface Accumulated {
  histogram: LatencyHistogram;
  calls: number;
  errors: number;
  firstError: string | undefined;
  elapsedMs: number;
  clientCpuMicros: number;
  serverCpuMicros: number | null;
  /** Per process; a process whose CPU could not be read once is left out. */
  byProcess: Map<BenchProcessName, number | null>;
  degradedBefore: number;
}

/** Settings of one level. */
export interface LevelSettings {
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  sliceMs: number;
}

/** CPU time of each process now, µs; null for one whose CPU cannot be read. */
const readCpus = (
  names: BenchProcessName[],
  pids: ReadonlyMap<BenchProcessName, number>,
): Map<BenchProcessName, number | null> =>
  new Map(
    names.map((name) => {
      const pid = pids.get(name);
      return [name, pid === undefined ? null : (readCpuMicros(pid) ?? null)];
    }),
  );

/**
 * Runs one concurrency level for every target: a warm-up each, then the
 * measured time in slices, taking turns in an order that rotates every slice
 * so that no target always follows the same one. Returns one result per
 * target with its calls/s as a share of its baseline's (a bare server row).
 */
export async function runLevel(
  targets: BenchTarget[],
  pids: ReadonlyMap<BenchProcessName, number>,
  settings: LevelSettings,
  onProgress: (text: string) => void = () => undefined,
): Promise<StepResult[]> {
  for (const target of targets) {
    if (settings.warmupMs > 0) await closedLoop(target.call, settings.concurrency, settings.warmupMs);
  }
  const accumulated = new Map<BenchTarget, Accumulated>(
    targets.map((target) => [
      target,
      {
        histogram: newHistogram(),
        calls: 0,
        errors: 0,
        firstError: undefined,
        elapsedMs: 0,
        clientCpuMicros: 0,
        serverCpuMicros: 0,
        byProcess: new Map(target.involves.map((name) => [name, 0])),
        degradedBefore: target.degraded,
      },
    ]),
  );
  const slices = Math.max(1, Math.ceil(settings.durationMs / settings.sliceMs));
  const sliceMs = settings.durationMs / slices;
  for (let slice = 0; slice < slices; slice++) {
    for (let index = 0; index < targets.length; index++) {
      const target = targets[(index + slice) % targets.length]!;
      const into = accumulated.get(target)!;
      const serverBefore = readCpus(target.involves, pids);
      const clientBefore = process.cpuUsage();
      const result = await closedLoop(target.call, settings.concurrency, sliceMs, into.histogram);
      const client = process.cpuUsage(clientBefore);
      const serverAfter = readCpus(target.involves, pids);
      into.calls += result.calls;
      into.errors += result.errors;
      into.firstError ??= result.firstError;
      into.elapsedMs += result.elapsedMs;
      into.clientCpuMicros += client.user + client.system;
      for (const name of target.involves) {
        const sofar = into.byProcess.get(name);
        const before = serverBefore.get(name);
        const after = serverAfter.get(name);
        into.byProcess.set(name, sofar == null || before == null || after == null ? null : sofar + after - before);
      }
      const used = [...into.byProcess.values()];
      into.serverCpuMicros = used.includes(null) ? null : used.reduce<number>((sum, micros) => sum + micros!, 0);
    }
    onProgress(`  ${settings.concurrency} in flight: slice ${slice + 1}/${slices}`);
  }
  const steps = targets.map((target): StepResult => {
    const into = accumulated.get(target)!;
    const h = into.histogram;
    const at = (percentile: number) => h.getValueAtPercentile(percentile) / 1000;
    const calls = Math.max(1, into.calls);
    const step: StepResult = {
      target: target.key,
      title: target.title,
      concurrency: settings.concurrency,
      calls: into.calls,
      errors: into.errors,
      degraded: target.degraded - into.degradedBefore,
      elapsedSeconds: into.elapsedMs / 1000,
      callsPerSecond: (into.calls * 1000) / into.elapsedMs,
      latencyMs: { p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max: h.maxValue / 1000, mean: h.mean / 1000 },
      baseline: target.baseline,
      ratioToBaseline: 0,
      clientCpuMicrosPerCall: into.clientCpuMicros / calls,
      serverCpuMicrosPerCall: into.serverCpuMicros === null ? null : into.serverCpuMicros / calls,
      serverCpuMicrosPerCallByProcess: Object.fromEntries(
        [...into.byProcess].flatMap(([name, micros]) => (micros === null ? [] : [[name, micros / calls]])),
      ),
    };
    if (into.firstError !== undefined) step.firstError = into.firstError;
    return step;
  });
  const rate = new Map(steps.map((step) => [step.target, step.callsPerSecond]));
  targets.forEach((target, index) => {
    const baseline = rate.get(target.baseline) ?? 0;
    steps[index]!.ratioToBaseline = baseline > 0 ? steps[index]!.callsPerSecond / baseline : 0;
  });
  return steps;
}
