// What the models predict, beside which every measurement is reported.

/** How the aggregator orders its calls. */
export type FanOutMode = "parallel" | "sequential";

/**
 * Added latency on the critical path when the delayed dependencies each take
 * `delayMs` longer. Products needs the orders' product ids, so it comes after
 * orders in both modes: delaying products alone adds the delay once either
 * way. Delaying all three adds it twice in parallel (max(users, orders), then
 * products) and three times in sequence (users + orders + products).
 */
export function addedLatencyMs(mode: FanOutMode, delayed: "products" | "all", delayMs: number): number {
  if (delayed === "products") return delayMs;
  return (mode === "parallel" ? 2 : 3) * delayMs;
}

/** Probability that one dependency call fails when each request fails with q and is retried `retries` times. */
export function effectiveFailure(q: number, retries: number): number {
  return q ** (retries + 1);
}

/**
 * Availability model of the view with three dependencies each failing with
 * (effective) probability q, independently:
 * - full: every part answered, the product of availabilities (1 - q)^3;
 * - failed: orders failed (there is nothing to show without it, and the
 *   stale copy is off), q;
 * - degraded: orders answered but users or products did not, the rest.
 */
export function availabilityPrediction(
  q: number,
  retries: number,
): { full: number; degraded: number; failed: number; qEffective: number } {
  const qe = effectiveFailure(q, retries);
  const full = (1 - qe) ** 3;
  const failed = qe;
  return { full, degraded: 1 - full - failed, failed, qEffective: qe };
}

/** Dean & Barroso: with n parallel calls each slow with probability p, the share of slow answers. */
export function slowFraction(p: number, n: number): number {
  return 1 - (1 - p) ** n;
}

/**
 * With hedging after about the dependency's p95, a call is slow only when
 * the first request and its hedge are both slow: p^2 per call (the hedge is
 * sent, not waited on, so a fast hedge answers at the hedge delay plus a fast
 * call's time, under the threshold).
 */
export function hedgedSlowFraction(p: number, n: number): number {
  return slowFraction(p * p, n);
}

/** Hedging at the q-quantile of a dependency's latency sends a second request for about 1 - q of calls. */
export function hedgeExtraLoad(hedgeQuantile: number): number {
  return 1 - hedgeQuantile;
}

/**
 * An EVENTUAL view is read from user-orders' own projection and makes no
 * downstream call, so a dependency's delay or failure cannot reach it: no
 * added latency, and every answer full whatever q is.
 */
export const eventualAvailabilityPrediction = { full: 1, degraded: 0, failed: 0 } as const;

/**
 * How far an EVENTUAL p50 may sit from its flat prediction and still count as
 * flat: a tenth of what the same delay adds to a STRONG view on its critical
 * path, plus 1 ms for the noise of two busy cores. Any real dependence on the
 * delay (a tenth or more of it) falls outside.
 */
export function flatTolerance(strongAddedMs: number): number {
  return 0.1 * strongAddedMs + 1;
}

/**
 * Staleness of a write the reader could not see because it was down, before
 * any catch-up: the write has to wait for the rest of the outage and the
 * restart, until the reader is ready again (`readyAtMs`). What the
 * projection then needs to catch up is measured on top of it.
 */
export function outageStalenessMs(ackAtMs: number, readyAtMs: number): number {
  return Math.max(0, readyAtMs - ackAtMs);
}
