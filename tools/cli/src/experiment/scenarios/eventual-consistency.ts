import type { Client } from "@connectrpc/connect";
import type { UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { waitForProjection } from "../../mesh/projection-progress.js";
import { delayFaults, dependencies, onEveryDependency } from "../experiment-mesh.js";
import type { DependencyName } from "@shopmesh/user-orders/dependencies";
import type { ScenarioContext } from "../scenario-context.js";
import { countKinds, kindFigures, latencySummary, type KindFigure } from "../statistics.js";
import { addedLatencyMs, eventualAvailabilityPrediction, flatTolerance } from "../theory.js";
import {
  answerKinds,
  runClosedLoop,
  sampleView,
  streamStates,
  type AnswerKind,
  type ViewSample,
} from "../view-load.js";
import type { LatencyRow } from "./dependency-latency.js";

/** A latency row of EVENTUAL views; predicted p50 and p99 are flat: the figures with no delay. */
export interface EventualLatencyRow extends Omit<LatencyRow, "mode"> {
  /** What the delay adds to a STRONG (parallel) view's critical path, for the tolerance. */
  strongAddedMs: number;
  /** How far p50 may sit from the flat prediction (flatTolerance). */
  tolerance: number;
  within: boolean;
}

export interface EventualAvailabilityRow {
  q: number;
  n: number;
  counts: Record<AnswerKind, number>;
  kinds: Record<AnswerKind, KindFigure>;
  /** Answers that reported all three source streams connected. */
  streamsConnected: number;
  p50: number;
  p99: number;
}

export interface ProjectionCatchUp {
  /** From the end of seeding until the projection had applied every source's head. */
  waitedMs: number;
  /** Each source's newest sequence number, asked of the source. */
  heads: Record<DependencyName, number>;
  polls: number;
}

export interface EventualResult {
  catchUp: ProjectionCatchUp;
  latency: { rows: EventualLatencyRow[]; perCell: number; concurrency: number };
  availability: { rows: EventualAvailabilityRow[]; perCell: number; concurrency: number };
}

/**
 * Waits, by polling an EVENTUAL view every 10 ms, until the projection
 * reports every stream connected and applied up to its head, and that head
 * is at least the one the source itself reports: only then does an EVENTUAL
 * view hold everything seeded, and measuring it compares like with like.
 */
async function catchUpAfterSeeding(context: ScenarioContext, timeoutMs = 120_000): Promise<ProjectionCatchUp> {
  const heads = await context.mesh.sourceHeads();
  const wait = await waitForProjection({
    target: context.mesh.address("user-orders"),
    tls: context.mesh.clientTls("user-orders"),
    token: await context.token(),
    userId: context.dataset.users[0]!.id,
    timeoutMs,
    heads,
  });
  if (!wait.caughtUp) {
    const state = wait.last ? JSON.stringify(streamStates(wait.last)) : "no answer";
    throw new Error(`the projection did not catch up with the sources within ${timeoutMs} ms (${state})`);
  }
  return {
    waitedMs: wait.waitedMs,
    heads: Object.fromEntries(dependencies.map((d) => [d, Number(heads[d])])) as Record<DependencyName, number>,
    polls: wait.polls,
  };
}

/**
 * EVENTUAL views under the faults of the latency and availability sweeps
 * (the same delays on products and on all three, the same failure
 * probability q on each dependency), for comparison with the STRONG figures
 * measured there. The projection is first let catch up with the seeding.
 */
export async function eventualConsistency(context: ScenarioContext): Promise<EventualResult> {
  const delays = context.quick ? [0, 100] : [0, 25, 50, 100, 200];
  const qs = context.quick ? [0.1, 0.3] : [0.01, 0.05, 0.1, 0.2, 0.3];
  // EVENTUAL calls cost a few ms, so larger samples than STRONG's are cheap.
  const latencyPerCell = context.quick ? 100 : 300;
  const availabilityPerCell = context.quick ? 150 : 600;
  const availabilityConcurrency = 4;
  const latencyCells = 1 + 2 * (delays.length - 1);
  context.progress.begin("EVENTUAL under faults", latencyCells * latencyPerCell + qs.length * availabilityPerCell);

  // The aggregator's settings do not matter to EVENTUAL; the defaults are in force after seeding.
  await context.mesh.configureAggregator({});
  await context.mesh.setFaults({});
  const catchUp = await catchUpAfterSeeding(context);
  const client = context.mesh.view(await context.token());
  const send = eventualSender(context, client);
  // A far longer warm-up than STRONG's: at about a millisecond a call, EVENTUAL views keep getting
  // faster for the first thousand or so calls (V8 tiering up the read path; measured: p50 1.26 ms
  // over the first 300 calls, 0.88 ms after 2000), and the no-delay row, measured first, is the one
  // every other row is compared with.
  await runClosedLoop({ count: context.quick ? 300 : 1500, concurrency: 1, maxMs: 15_000, send });

  let done = 0;
  const latencyRows: EventualLatencyRow[] = [];
  let base: { p50: number; p99: number } | undefined;
  for (const delayed of ["products", "all"] as const) {
    for (const delayMs of delays) {
      if (delayMs === 0 && base) {
        latencyRows.push({ ...latencyRows[0]!, delayed });
        continue;
      }
      await context.mesh.setFaults(delayFaults(delayed, delayMs));
      // One at a time: each figure is the view's own time, not a queue behind other calls.
      const samples = await runClosedLoop({
        count: latencyPerCell,
        concurrency: 1,
        maxMs: 60_000,
        send,
        onSample: () => context.progress.update(++done, `EVENTUAL, ${delayed} +${delayMs}ms`),
      });
      const summary = latencySummary(samples);
      base ??= summary;
      const strongAddedMs = addedLatencyMs("parallel", delayed, delayMs);
      const tolerance = flatTolerance(strongAddedMs);
      latencyRows.push({
        delayed,
        delayMs,
        n: summary.n,
        full: countKinds(samples).full,
        p50: summary.p50,
        p99: summary.p99,
        predictedP50: base.p50,
        predictedP99: base.p99,
        strongAddedMs,
        tolerance,
        within: Math.abs(summary.p50 - base.p50) <= tolerance,
      });
    }
  }

  const availabilityRows: EventualAvailabilityRow[] = [];
  for (const q of qs) {
    await context.mesh.setFaults(onEveryDependency({ errorRate: q, errorCode: "UNAVAILABLE" }));
    const samples = await runClosedLoop({
      count: availabilityPerCell,
      concurrency: availabilityConcurrency,
      maxMs: 60_000,
      send,
      onSample: () => context.progress.update(++done, `EVENTUAL, q=${q}`),
    });
    const counts = countKinds(samples);
    const n = samples.length;
    const kinds = kindFigures(counts, n, eventualAvailabilityPrediction);
    const summary = latencySummary(samples);
    availabilityRows.push({
      q,
      n,
      counts,
      kinds,
      streamsConnected: samples.filter((s) => s.streams !== undefined && s.streams.disconnected.length === 0).length,
      p50: summary.p50,
      p99: summary.p99,
    });
  }
  await context.mesh.setFaults({});
  const outside =
    latencyRows.filter((r) => !r.within).length +
    availabilityRows.flatMap((r) => answerKinds.filter((k) => !r.kinds[k].within)).length;
  context.progress.end(
    `caught up ${(catchUp.waitedMs / 1000).toFixed(1)} s after seeding; p50 ${latencyRows[0]!.p50.toFixed(1)} ms; ${outside} figure(s) outside tolerance`,
  );
  return {
    catchUp,
    latency: { rows: latencyRows, perCell: latencyPerCell, concurrency: 1 },
    availability: { rows: availabilityRows, perCell: availabilityPerCell, concurrency: availabilityConcurrency },
  };
}

/** EVENTUAL GetUserOrders for the seeded customers in turn. */
function eventualSender(
  context: ScenarioContext,
  client: Client<typeof UserOrdersService>,
): (index: number, runStart: number) => Promise<ViewSample> {
  const users = context.dataset.users;
  let offset = 0;
  return (_index, runStart) => sampleView(client, users[offset++ % users.length]!.id, 3000, runStart, "eventual");
}
