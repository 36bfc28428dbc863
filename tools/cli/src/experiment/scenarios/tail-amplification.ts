import { viewSender, warmUp, type ScenarioContext } from "../scenario-context.js";
import { binomialTolerance, latencySummary, quantile } from "../statistics.js";
import { hedgedSlowFraction, hedgeExtraLoad, slowFraction } from "../theory.js";
import { runClosedLoop, type ViewSample } from "../view-load.js";
import { dependencies } from "../experiment-mesh.js";
import type { DependencyName } from "@shopmesh/user-orders/dependencies";

export interface TailRow {
  shards: number;
  /** Calls per view: users, orders and one per product shard, as the timings show. */
  fanOut: number;
  p: number;
  hedged: boolean;
  n: number;
  slow: number;
  measured: number;
  predicted: number;
  tolerance: number;
  within: boolean;
  p50: number;
  p99: number;
  /** Hedged requests over first requests, downstream. */
  extraLoad: number;
  predictedExtraLoad: number;
}

export interface TailResult {
  rows: TailRow[];
  slowLatencyMs: number;
  thresholdMs: number;
  p: number;
  perCell: number;
  concurrency: number;
  /** The hedge delays used: about each dependency's p95 in the unhedged k = 1 row. */
  hedgeDelaysMs: Record<DependencyName, number>;
}

const hedgeQuantile = 0.95;

/**
 * Each dependency call is slow (100 ms more) with probability p: the share
 * of slow views against 1 - (1 - p)^n, over a sweep of product shards, and
 * with hedged requests.
 */
export async function tailAmplification(context: ScenarioContext): Promise<TailResult> {
  const p = 0.01;
  // On this 2-core machine a view's own p99 is 40-60 ms; a slow call must stand well clear of it.
  const slowLatencyMs = 250;
  const thresholdMs = 150;
  const shardsSweep = context.quick ? [1, 4] : [1, 2, 4, 8];
  const perCell = context.quick ? 200 : 1000;
  // Two in flight keep the machine far from saturation, so that "slow" means the injected tail, not a queue.
  const concurrency = 2;
  const hedgedShards = context.quick ? [1] : [1, shardsSweep.at(-1)!];
  // The row without injected slowness only checks that the threshold clears the machine's own tail.
  const baselineCalls = Math.round(perCell / 2);
  context.progress.begin("tail amplification", baselineCalls + (shardsSweep.length + hedgedShards.length) * perCell);
  let done = 0;
  const rows: TailRow[] = [];
  const slowFault = { latencyMs: slowLatencyMs, slowProbability: p };

  const measure = async (
    shards: number,
    probability: number,
    hedge?: Record<DependencyName, number>,
    count = perCell,
  ) => {
    // One shard is the default; leaving the variable out lets the default process serve without a restart.
    const env: Record<string, string> = shards === 1 ? {} : { PRODUCTS_SHARDS: String(shards) };
    if (hedge) for (const d of dependencies) env[`HEDGE_${d.toUpperCase()}_DELAY`] = `${hedge[d]}ms`;
    await context.mesh.configureAggregator(env);
    await context.mesh.setFaults({});
    const send = await viewSender(context, 3000);
    await warmUp(send);
    if (probability > 0) await context.mesh.setFaults({ users: slowFault, orders: slowFault, products: slowFault });
    const label = `k=${shards}, p=${probability}${hedge ? ", hedged" : ""}`;
    const samples = await runClosedLoop({
      count,
      concurrency,
      maxMs: 120_000,
      send,
      onSample: () => context.progress.update(++done, label),
    });
    const answered = samples.filter((s) => s.kind !== "failed");
    // Requests sent per view: one each to users and orders, one per products shard (no retries happen here).
    const fanOut = Math.round(
      quantile(
        answered.map((s) => s.attempts),
        0.5,
      ),
    );
    const slow = samples.filter((s) => s.latencyMs > thresholdMs).length;
    const predicted = hedge ? hedgedSlowFraction(probability, fanOut) : slowFraction(probability, fanOut);
    const tolerance = binomialTolerance(predicted, samples.length);
    const attempts = answered.reduce((sum, s) => sum + s.attempts, 0);
    const summary = latencySummary(samples);
    rows.push({
      shards,
      fanOut,
      p: probability,
      hedged: hedge !== undefined,
      n: samples.length,
      slow,
      measured: slow / samples.length,
      predicted,
      tolerance,
      within: Math.abs(slow / samples.length - predicted) <= tolerance,
      p50: summary.p50,
      p99: summary.p99,
      extraLoad: answered.reduce((sum, s) => sum + s.hedges, 0) / Math.max(1, attempts),
      predictedExtraLoad: hedge ? hedgeExtraLoad(hedgeQuantile) : 0,
    });
    return samples;
  };

  await measure(1, 0, undefined, baselineCalls);
  // The hedge delay is one call's p95, from the k = 1 row: with more shards user-orders times the
  // products shards together (the slowest of them), which is not one call's latency.
  let hedgeDelaysMs: Record<DependencyName, number> | undefined;
  for (const shards of shardsSweep) {
    const samples = await measure(shards, p);
    hedgeDelaysMs ??= hedgeDelays(samples);
  }
  for (const shards of hedgedShards) await measure(shards, p, hedgeDelaysMs);
  await context.mesh.setFaults({});
  const last = rows.filter((r) => !r.hedged).at(-1)!;
  context.progress.end(
    `fan-out ${last.fanOut}: ${(last.measured * 100).toFixed(1)}% slow (theory ${(last.predicted * 100).toFixed(1)}%)`,
  );
  return { rows, slowLatencyMs, thresholdMs, p, perCell, concurrency, hedgeDelaysMs: hedgeDelaysMs! };
}

/** About the p95 of each dependency's call time as user-orders saw it, in whole ms (at least 1). */
function hedgeDelays(samples: ViewSample[]): Record<DependencyName, number> {
  const delays = {} as Record<DependencyName, number>;
  for (const d of dependencies) {
    const times = samples.flatMap((s) => (s.durations[d] === undefined ? [] : [s.durations[d]]));
    delays[d] = Math.max(1, Math.ceil(quantile(times, hedgeQuantile)));
  }
  return delays;
}
