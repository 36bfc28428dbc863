import type { AnswerKind, ViewSample } from "./view-load.js";

/** The q-quantile (0..1) of `values` by the nearest-rank method. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

/** Counts of each kind of answer. */
export function countKinds(samples: readonly ViewSample[]): Record<AnswerKind, number> {
  const counts = { full: 0, degraded: 0, failed: 0 };
  for (const sample of samples) counts[sample.kind]++;
  return counts;
}

/** Latency summary of a set of calls. */
export function latencySummary(samples: readonly ViewSample[]): { n: number; p50: number; p95: number; p99: number } {
  const latencies = samples.map((s) => s.latencyMs);
  return {
    n: samples.length,
    p50: quantile(latencies, 0.5),
    p95: quantile(latencies, 0.95),
    p99: quantile(latencies, 0.99),
  };
}

/**
 * How far a measured fraction may sit from a predicted probability p over N
 * independent trials and still agree with it: three binomial standard
 * errors, 3 * sqrt(p (1 - p) / N), plus three trials' worth (3 / N), plus a
 * small allowance for the timing effects the model leaves out. The 3 / N
 * term matters when N * p is small, where the normal approximation
 * understates the spread: with p = 0.002 and N = 150 (0.3 expected), three
 * such answers happen about once in 300 runs, and a check over dozens of
 * cells would fail on chance alone without it.
 */
export function binomialTolerance(p: number, n: number, epsilon = toleranceEpsilon): number {
  if (n === 0) return Number.POSITIVE_INFINITY;
  return 3 * Math.sqrt((p * (1 - p)) / n) + 3 / n + epsilon;
}
export const toleranceEpsilon = 0.005;

/** A measured share of one kind of answer beside its prediction. */
export interface KindFigure {
  measured: number;
  predicted: number;
  tolerance: number;
  within: boolean;
}

/** Each kind's measured share of `n` answers beside the predicted probability, with the binomial tolerance for that N. */
export function kindFigures(
  counts: Record<AnswerKind, number>,
  n: number,
  prediction: Record<AnswerKind, number>,
): Record<AnswerKind, KindFigure> {
  const figure = (kind: AnswerKind): KindFigure => {
    const measured = counts[kind] / n;
    const predicted = prediction[kind];
    const tolerance = binomialTolerance(predicted, n);
    return { measured, predicted, tolerance, within: Math.abs(measured - predicted) <= tolerance };
  };
  return { full: figure("full"), degraded: figure("degraded"), failed: figure("failed") };
}

/** Summary of a set of staleness (or other) figures in ms. */
export interface Spread {
  n: number;
  min: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

/** min, p50, p99, max and mean of `values` (NaN for each when there are none). */
export function spread(values: readonly number[]): Spread {
  const n = values.length;
  return {
    n,
    min: n ? Math.min(...values) : Number.NaN,
    p50: quantile(values, 0.5),
    p99: quantile(values, 0.99),
    max: n ? Math.max(...values) : Number.NaN,
    mean: n ? values.reduce((a, b) => a + b, 0) / n : Number.NaN,
  };
}
