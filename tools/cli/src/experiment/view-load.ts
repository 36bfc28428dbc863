import { ConnectError, type Client } from "@connectrpc/connect";
import { Consistency, type GetUserOrdersResponse, type UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { dependencyNameOf, type DependencyName } from "@shopmesh/user-orders/dependencies";

/** How a GetUserOrders call ended: every part present, some left out, or no answer. */
export type AnswerKind = "full" | "degraded" | "failed";
export const answerKinds: readonly AnswerKind[] = ["full", "degraded", "failed"];

/** One GetUserOrders call as the experiment saw it. */
export interface ViewSample {
  /** When it was sent, in ms since the run began. */
  atMs: number;
  latencyMs: number;
  kind: AnswerKind;
  /** How the view was asked for. */
  consistency: "strong" | "eventual";
  /**
   * For an EVENTUAL answer, the source streams the projection reported as
   * disconnected (empty: all three connected) and those it reported behind
   * their source (applied below head).
   */
  streams?: { disconnected: DependencyName[]; behind: DependencyName[] };
  /** Status code name of a failed call. */
  code?: string;
  /** Downstream requests sent (retries included) and hedges, summed over dependencies. */
  attempts: number;
  hedges: number;
  /** Per dependency, how long each of its calls took as user-orders timed it. */
  durations: Partial<Record<DependencyName, number>>;
}

/**
 * Whether an answer shows everything the view is made of: no degradation
 * listed, a profile, and product details on every line. A STRONG view that
 * lacks a part always lists a degradation; an EVENTUAL view lists one only
 * while a stream it needs is behind, so its content is checked directly:
 * a line whose product the projection has not seen yet has no details.
 */
export function isComplete(response: GetUserOrdersResponse): boolean {
  return (
    response.degradations.length === 0 &&
    response.profile !== undefined &&
    response.orders.every((o) => o.lines.every((l) => l.product !== undefined))
  );
}

/** The names of the streams an EVENTUAL answer reports disconnected, and behind their source. */
export function streamStates(response: GetUserOrdersResponse): {
  disconnected: DependencyName[];
  behind: DependencyName[];
} {
  const disconnected: DependencyName[] = [];
  const behind: DependencyName[] = [];
  for (const lag of response.streamLags) {
    const name = dependencyNameOf(lag.source);
    if (!name) continue;
    if (!lag.connected) disconnected.push(name);
    if (lag.appliedSequence < lag.headSequence) behind.push(name);
  }
  return { disconnected, behind };
}

/** Sends one GetUserOrders (STRONG unless asked otherwise) and classifies the answer. */
export async function sampleView(
  client: Client<typeof UserOrdersService>,
  userId: string,
  timeoutMs: number,
  runStart: number,
  consistency: "strong" | "eventual" = "strong",
): Promise<ViewSample> {
  const sent = performance.now();
  try {
    const response = await client.getUserOrders(
      { userId, pageSize: 20, consistency: consistency === "eventual" ? Consistency.EVENTUAL : Consistency.STRONG },
      { timeoutMs },
    );
    const latencyMs = performance.now() - sent;
    const durations: Partial<Record<DependencyName, number>> = {};
    let attempts = 0;
    let hedges = 0;
    for (const timing of response.timings) {
      attempts += timing.attempts;
      hedges += timing.hedges;
      const name = dependencyNameOf(timing.dependency);
      if (name && timing.duration)
        durations[name] = Number(timing.duration.seconds) * 1000 + timing.duration.nanos / 1e6;
    }
    return {
      atMs: sent - runStart,
      latencyMs,
      kind: isComplete(response) ? "full" : "degraded",
      consistency,
      ...(consistency === "eventual" ? { streams: streamStates(response) } : {}),
      attempts,
      hedges,
      durations,
    };
  } catch (error) {
    return {
      atMs: sent - runStart,
      latencyMs: performance.now() - sent,
      kind: "failed",
      consistency,
      code: codeName(ConnectError.from(error).code),
      attempts: 0,
      hedges: 0,
      durations: {},
    };
  }
}

/** The canonical name of a gRPC status code. */
export function codeName(code: number): string {
  return (
    [
      "OK",
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
    ][code] ?? String(code)
  );
}

/** A closed-loop run: `count` calls, `concurrency` at a time, stopping early after `maxMs`. */
export async function runClosedLoop(options: {
  count: number;
  concurrency: number;
  maxMs: number;
  send: (index: number, runStart: number) => Promise<ViewSample>;
  onSample?: (sample: ViewSample) => void;
}): Promise<ViewSample[]> {
  const samples: ViewSample[] = [];
  const runStart = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < options.count && performance.now() - runStart < options.maxMs) {
      const sample = await options.send(next++, runStart);
      samples.push(sample);
      options.onSample?.(sample);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return samples;
}

/**
 * An open-loop run at a steady rate for `durationMs` (for a timeline): a
 * call is sent every 1000/rate ms whatever the earlier ones are doing, at
 * most `maxInFlight` at once. `events` run at their time into the run.
 * With `afterEventsMs`, the run goes on past `durationMs` until every event
 * has finished and that long after the last one did (at most three times
 * `durationMs` in all), so that what follows an event whose duration is not
 * known beforehand, such as a restart, is measured too.
 */
export async function runPaced<T = ViewSample>(options: {
  ratePerSecond: number;
  durationMs: number;
  maxInFlight: number;
  send: (index: number, runStart: number) => Promise<T>;
  events: { atMs: number; run: () => Promise<void> }[];
  onSample?: (sample: T) => void;
  /** When the run begins (performance.now()); now unless given, so that two runs can share one clock. */
  runStart?: number;
  /** How long the run goes on after the last event finished, even past `durationMs`. */
  afterEventsMs?: number;
}): Promise<{ samples: T[]; skipped: number; events: { atMs: number; doneMs: number }[]; durationMs: number }> {
  const samples: T[] = [];
  const runStart = options.runStart ?? performance.now();
  const inFlight = new Set<Promise<void>>();
  let skipped = 0;
  const eventTimes: { atMs: number; doneMs: number }[] = [];
  const eventsDone = options.events.map(
    (event) =>
      new Promise<void>((resolve, reject) => {
        setTimeout(() => {
          const at = performance.now() - runStart;
          event.run().then(() => {
            eventTimes.push({ atMs: at, doneMs: performance.now() - runStart });
            resolve();
          }, reject);
        }, event.atMs);
      }),
  );
  const intervalMs = 1000 / options.ratePerSecond;
  const lastEventDoneMs = () =>
    eventTimes.length < options.events.length
      ? Number.POSITIVE_INFINITY
      : Math.max(0, ...eventTimes.map((e) => e.doneMs));
  const endMs = () =>
    options.afterEventsMs === undefined
      ? options.durationMs
      : Math.min(3 * options.durationMs, Math.max(options.durationMs, lastEventDoneMs() + options.afterEventsMs));
  let durationMs = options.durationMs;
  for (let index = 0; ; index++) {
    const due = index * intervalMs;
    durationMs = endMs();
    if (due >= durationMs) break;
    const wait = due - (performance.now() - runStart);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    if (inFlight.size >= options.maxInFlight) {
      skipped++;
      continue;
    }
    const call: Promise<void> = options.send(index, runStart).then((sample) => {
      samples.push(sample);
      options.onSample?.(sample);
      inFlight.delete(call);
    });
    inFlight.add(call);
  }
  await Promise.all([...inFlight, ...eventsDone]);
  return { samples, skipped, events: eventTimes.sort((a, b) => a.atMs - b.atMs), durationMs };
}
