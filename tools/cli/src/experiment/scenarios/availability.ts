import { viewSender, warmUp, type ScenarioContext } from "../scenario-context.js";
import { countKinds, kindFigures, type KindFigure } from "../statistics.js";
import { onEveryDependency } from "../experiment-mesh.js";
import { availabilityPrediction } from "../theory.js";
import { answerKinds, runClosedLoop, type AnswerKind } from "../view-load.js";

/** A user-orders configuration the availability sweep compares. */
export interface ResilienceVariant {
  name: string;
  retries: number;
  env: Record<string, string>;
}

export const resilienceVariants: ResilienceVariant[] = [
  // BREAKER_FAILURES 1000 consecutive failures never happen at these rates: the breaker is as good as off.
  { name: "no retries, no breaker", retries: 0, env: { RETRY_ATTEMPTS: "0", BREAKER_FAILURES: "1000" } },
  { name: "2 retries + breaker", retries: 2, env: {} },
];

export interface AvailabilityRow {
  variant: string;
  retries: number;
  q: number;
  qEffective: number;
  n: number;
  counts: Record<AnswerKind, number>;
  kinds: Record<AnswerKind, KindFigure>;
  /** Downstream requests per answered view (retries included). */
  requestsPerView: number;
}

export interface AvailabilityResult {
  rows: AvailabilityRow[];
  perCell: number;
  concurrency: number;
}

/**
 * Every dependency fails each request with probability q (UNAVAILABLE): the
 * shares of full, degraded and failed views against the product of
 * availabilities, without and with retries and the breaker.
 */
export async function availability(context: ScenarioContext): Promise<AvailabilityResult> {
  const qs = context.quick ? [0.1, 0.3] : [0.01, 0.05, 0.1, 0.2, 0.3];
  const perCell = context.quick ? 150 : 600;
  // Few enough in flight that no call nears its timeout: timeouts would add failures the model does not have.
  const concurrency = 4;
  context.progress.begin("availability", resilienceVariants.length * qs.length * perCell);
  let done = 0;
  const rows: AvailabilityRow[] = [];
  for (const variant of resilienceVariants) {
    await context.mesh.configureAggregator(variant.env);
    await context.mesh.setFaults({});
    const send = await viewSender(context, 3000);
    await warmUp(send);
    for (const q of qs) {
      await context.mesh.setFaults(onEveryDependency({ errorRate: q, errorCode: "UNAVAILABLE" }));
      const samples = await runClosedLoop({
        count: perCell,
        concurrency,
        maxMs: 120_000,
        send,
        onSample: () => context.progress.update(++done, `${variant.name}, q=${q}`),
      });
      const counts = countKinds(samples);
      const n = samples.length;
      const prediction = availabilityPrediction(q, variant.retries);
      const kinds = kindFigures(counts, n, prediction);
      const answered = samples.filter((s) => s.kind !== "failed");
      rows.push({
        variant: variant.name,
        retries: variant.retries,
        q,
        qEffective: prediction.qEffective,
        n,
        counts,
        kinds,
        requestsPerView: answered.reduce((sum, s) => sum + s.attempts, 0) / Math.max(1, answered.length),
      });
    }
  }
  await context.mesh.setFaults({});
  const outside = rows.flatMap((r) => answerKinds.filter((k) => !r.kinds[k].within)).length;
  context.progress.end(`${rows.length} rows, ${outside} figure(s) outside tolerance`);
  return { rows, perCell, concurrency };
}
