import { newHistogram, type LatencyHistogram } from "../bench/load-loop.js";
import type { ServiceName } from "../mesh/local-mesh.js";
import { operations, type FaultKind, type Operation } from "./fault-schedule.js";
import { tally } from "./load-statistics.js";
import type { MemorySample } from "./load-mesh.js";

/** One window of a soak as reported: calls that ended in it, and memory at its end. */
export interface WindowSummary {
  index: number;
  fromSeconds: number;
  toSeconds: number;
  calls: number;
  callsPerSecond: number;
  /** Failed calls by status name. */
  errors: Record<string, number>;
  /** Failed calls no fault of the schedule explains. */
  unexpected: number;
  /** STRONG views answered with a degradation. */
  degraded: number;
  p50Ms: number;
  p99Ms: number;
  byOperation: Record<Operation, { calls: number; errors: number; p50Ms: number; p99Ms: number }>;
  /** Faults in force at some time during the window. */
  faults: FaultKind[];
  /** Per process, at the window's end. */
  memory: Partial<Record<ServiceName, { rssMiB: number; heapUsedMiB?: number }>>;
}

const mib = (bytes: number) => bytes / (1024 * 1024);
const ms = (histogram: LatencyHistogram, percentile: number) =>
  histogram.totalCount === 0 ? 0 : histogram.getValueAtPercentile(percentile) / 1000;

/** Accumulates the calls that end in one window. */
export class WindowAccumulator {
  #calls = 0;
  #unexpected = 0;
  #degraded = 0;
  readonly #errors: Record<string, number> = {};
  readonly #all = newHistogram();
  readonly #byOperation = new Map<Operation, { calls: number; errors: number; histogram: LatencyHistogram }>(
    operations.map((operation) => [operation, { calls: 0, errors: 0, histogram: newHistogram() }]),
  );

  constructor(
    readonly index: number,
    readonly fromMs: number,
    readonly toMs: number,
  ) {}

  /** Records one call: every call is timed, failed ones too (a hang shows as its deadline). */
  add(operation: Operation, code: string, latencyMs: number, unexpected: boolean, degraded: boolean): void {
    const micros = Math.max(1, Math.round(latencyMs * 1000));
    this.#calls++;
    this.#all.recordValue(micros);
    const entry = this.#byOperation.get(operation)!;
    entry.calls++;
    entry.histogram.recordValue(micros);
    if (code !== "OK") {
      entry.errors++;
      tally(this.#errors, code);
      if (unexpected) this.#unexpected++;
    }
    if (degraded) this.#degraded++;
  }

  summary(faults: FaultKind[], memory: Map<ServiceName, MemorySample>): WindowSummary {
    const seconds = (this.toMs - this.fromMs) / 1000;
    return {
      index: this.index,
      fromSeconds: this.fromMs / 1000,
      toSeconds: this.toMs / 1000,
      calls: this.#calls,
      callsPerSecond: seconds > 0 ? this.#calls / seconds : 0,
      errors: { ...this.#errors },
      unexpected: this.#unexpected,
      degraded: this.#degraded,
      p50Ms: ms(this.#all, 50),
      p99Ms: ms(this.#all, 99),
      byOperation: Object.fromEntries(
        [...this.#byOperation].map(([operation, entry]) => [
          operation,
          { calls: entry.calls, errors: entry.errors, p50Ms: ms(entry.histogram, 50), p99Ms: ms(entry.histogram, 99) },
        ]),
      ) as WindowSummary["byOperation"],
      faults,
      memory: Object.fromEntries(
        [...memory].map(([service, sample]) => [
          service,
          {
            rssMiB: mib(sample.rssBytes),
            ...(sample.heapUsedBytes === undefined ? {} : { heapUsedMiB: mib(sample.heapUsedBytes) }),
          },
        ]),
      ),
    };
  }
}
