import { createClient, createTransport } from "@shopmesh/sdk";
import { UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { delayFaults } from "../experiment-mesh.js";
import type { MonolithDatabase } from "../monolith.js";
import { viewSender, warmUp, type ScenarioContext } from "../scenario-context.js";
import { countKinds, latencySummary, quantile } from "../statistics.js";
import { addedLatencyMs, type FanOutMode } from "../theory.js";
import { runClosedLoop } from "../view-load.js";

export interface LatencyRow {
  mode: FanOutMode;
  delayed: "products" | "all";
  delayMs: number;
  n: number;
  full: number;
  p50: number;
  p99: number;
  predictedP50: number;
  predictedP99: number;
}

export interface LatencyResult {
  rows: LatencyRow[];
  delays: number[];
  perCell: number;
  monolith: { n: number; p50: number; p99: number; mean: number };
  /** Views compared line by line between the aggregator and the monolith. */
  agreement: { checked: number; agreed: number };
}

/**
 * Products (or all three dependencies) delayed by a fixed amount: the
 * aggregator's latency in parallel and in sequential fan-out, against the
 * d = 0 figure plus the delay on the critical path; and the monolith's join.
 */
export async function dependencyLatency(context: ScenarioContext, monolith: MonolithDatabase): Promise<LatencyResult> {
  const delays = context.quick ? [0, 100] : [0, 25, 50, 100, 200];
  const perCell = context.quick ? 20 : 150;
  const modes: FanOutMode[] = ["parallel", "sequential"];
  const cells = modes.length * (1 + 2 * (delays.length - 1));
  context.progress.begin("dependency latency", cells * perCell + 1);
  let done = 0;
  const rows: LatencyRow[] = [];
  for (const mode of modes) {
    // The default timeouts (300/500/300 ms) are above every delay here, and the caller's 5 s deadline is the budget.
    await context.mesh.configureAggregator(mode === "parallel" ? {} : { FAN_OUT: mode });
    const send = await viewSender(context, 5000);
    await warmUp(send);
    let base: { p50: number; p99: number } | undefined;
    for (const delayed of ["products", "all"] as const) {
      for (const delayMs of delays) {
        if (delayMs === 0 && delayed === "all" && base) {
          rows.push({ ...rows.find((r) => r.mode === mode && r.delayMs === 0)!, delayed: "all" });
          continue;
        }
        await context.mesh.setFaults(delayFaults(delayed, delayMs));
        const added = addedLatencyMs(mode, delayed, delayMs);
        const samples = await runClosedLoop({
          count: perCell,
          concurrency: concurrencyFor(added),
          maxMs: 60_000,
          send,
          onSample: () => context.progress.update(++done, `${mode}, ${delayed} +${delayMs}ms`),
        });
        const summary = latencySummary(samples);
        base ??= summary;
        rows.push({
          mode,
          delayed,
          delayMs,
          n: summary.n,
          full: countKinds(samples).full,
          p50: summary.p50,
          p99: summary.p99,
          predictedP50: base.p50 + added,
          predictedP99: base.p99 + added,
        });
      }
    }
  }
  // user-orders stays in the last mode: the answers compared below are the same in both, and the
  // next scenario restarts it with its own settings anyway.
  await context.mesh.setFaults({});

  // The monolith answers the same question for the same customers, in-process.
  const users = context.dataset.users;
  const monolithRuns = context.quick ? 500 : 5000;
  const times: number[] = [];
  for (let i = 0; i < monolithRuns; i++) {
    const started = performance.now();
    monolith.view(users[i % users.length]!.id);
    times.push(performance.now() - started);
  }
  const agreement = await compareAnswers(context, monolith, context.quick ? 10 : 50);
  context.progress.update(cells * perCell + 1);
  context.progress.end(`${rows.length} rows; monolith p50 ${quantile(times, 0.5).toFixed(3)} ms`);
  return {
    rows,
    delays,
    perCell,
    monolith: {
      n: times.length,
      p50: quantile(times, 0.5),
      p99: quantile(times, 0.99),
      mean: times.reduce((a, b) => a + b, 0) / times.length,
    },
    agreement,
  };
}

/**
 * Calls in flight for a row: enough to finish in reasonable time, few enough
 * that the offered load stays near 20 views a second, so that the figures
 * measure the delay and not the queue for the machine's two cores (a view
 * costs about 7 ms of CPU across the processes).
 */
export function concurrencyFor(addedMs: number): number {
  return Math.min(8, Math.max(1, Math.round((15 + addedMs) / 50)));
}

/** Asks both systems for the same views and checks they list the same lines with the same product names. */
async function compareAnswers(
  context: ScenarioContext,
  monolith: MonolithDatabase,
  count: number,
): Promise<{ checked: number; agreed: number }> {
  const transport = createTransport({
    target: context.mesh.address("user-orders"),
    token: await context.token(),
    tls: context.mesh.clientTls("user-orders"),
  });
  try {
    const client = createClient(UserOrdersService, transport);
    let agreed = 0;
    const users = context.dataset.users;
    for (let i = 0; i < count; i++) {
      const userId = users[(i * 37) % users.length]!.id;
      const response = await client.getUserOrders({ userId, pageSize: 20 }, { timeoutMs: 5000 });
      const fromServices = response.orders.flatMap((o) =>
        o.lines.map((l) => `${o.orderId}|${l.productId}|${l.quantity}|${l.unitPrice?.minorUnits}|${l.product?.name}`),
      );
      const fromMonolith = monolith
        .view(userId)
        .map((l) => `${l.orderId}|${l.productId}|${l.quantity}|${l.unitPriceMinor}|${l.productName}`);
      if (
        response.degradations.length === 0 &&
        JSON.stringify(fromServices.sort()) === JSON.stringify(fromMonolith.sort())
      )
        agreed++;
    }
    return { checked: count, agreed };
  } finally {
    transport.close();
  }
}
