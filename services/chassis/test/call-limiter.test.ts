// The admission limiter on its own: slots, a first-come-first-served queue,
// and the wait limit (MAX_QUEUE_WAIT, or half the deadline), on fake time.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CallLimiter } from "../src/server/admission.js";

interface Recorded {
  events: string[];
  /** Asks for a slot for call `name`; returns the function that ends it. */
  call(name: string, timeLeftMs?: number): () => void;
}

function recorder(limiter: CallLimiter): Recorded {
  const events: string[] = [];
  return {
    events,
    call: (name, timeLeftMs) =>
      limiter.request(
        timeLeftMs,
        () => events.push(`${name} runs`),
        (details) => events.push(`${name} refused: ${details}`),
      ),
  };
}

describe("CallLimiter", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("starts waiting calls in arrival order as slots free, and counts each end once", () => {
    const limiter = new CallLimiter({ maxCallsInFlight: 2, maxCallsQueued: 3, maxQueueWaitMs: 1_000 });
    const { events, call } = recorder(limiter);
    const endA = call("a");
    const endB = call("b");
    const endC = call("c");
    call("d");
    expect(events).toEqual(["a runs", "b runs"]);
    expect([limiter.running, limiter.waiting]).toEqual([2, 2]);

    endA();
    endA();
    expect(events).toEqual(["a runs", "b runs", "c runs"]);
    expect([limiter.running, limiter.waiting]).toEqual([2, 1]);
    endB();
    endC();
    expect(events).toEqual(["a runs", "b runs", "c runs", "d runs"]);
    expect([limiter.running, limiter.waiting]).toEqual([1, 0]);
  });

  it("lets a new call wait behind those already waiting, even when a slot is free for a moment", () => {
    const limiter = new CallLimiter({ maxCallsInFlight: 1, maxCallsQueued: 2, maxQueueWaitMs: 1_000 });
    const { events, call } = recorder(limiter);
    const endA = call("a");
    call("b");
    endA();
    call("c");
    expect(events).toEqual(["a runs", "b runs"]);
    expect(limiter.waiting).toBe(1);
  });

  it("refuses a waiting call after MAX_QUEUE_WAIT, or half its deadline when that is sooner", () => {
    const limiter = new CallLimiter({ maxCallsInFlight: 1, maxCallsQueued: 5, maxQueueWaitMs: 300 });
    const { events, call } = recorder(limiter);
    call("running");
    call("no deadline");
    call("long deadline", 10_000);
    call("short deadline", 200);
    vi.advanceTimersByTime(99);
    expect(events).toEqual(["running runs"]);
    vi.advanceTimersByTime(1);
    expect(events.at(-1)).toBe("short deadline refused: server overloaded: 1 calls in progress; no slot came free within 100 ms");
    vi.advanceTimersByTime(200);
    expect(events.slice(2)).toEqual([
      "no deadline refused: server overloaded: 1 calls in progress; no slot came free within 300 ms",
      "long deadline refused: server overloaded: 1 calls in progress; no slot came free within 300 ms",
    ]);
    expect(limiter.waiting).toBe(0);
  });

  it("forgets a waiting call that ends before its turn", () => {
    const limiter = new CallLimiter({ maxCallsInFlight: 1, maxCallsQueued: 1, maxQueueWaitMs: 1_000 });
    const { events, call } = recorder(limiter);
    const endA = call("a");
    const endGone = call("gone");
    endGone();
    expect(limiter.waiting).toBe(0);
    call("next");
    endA();
    vi.advanceTimersByTime(5_000);
    expect(events).toEqual(["a runs", "next runs"]);
  });

  it("refuses at once when the queue is full, or when the deadline leaves no time to wait", () => {
    const limiter = new CallLimiter({ maxCallsInFlight: 1, maxCallsQueued: 1, maxQueueWaitMs: 1_000 });
    const { events, call } = recorder(limiter);
    call("a");
    call("expired", 0);
    call("b");
    call("c");
    expect(events).toEqual([
      "a runs",
      "expired refused: server overloaded: 1 calls in progress, 0 waiting",
      "c refused: server overloaded: 1 calls in progress, 1 waiting",
    ]);
  });

  it("admits everything when MAX_CALLS_IN_FLIGHT is 0", () => {
    const limiter = new CallLimiter({ maxCallsInFlight: 0, maxCallsQueued: 0, maxQueueWaitMs: 0 });
    const { events, call } = recorder(limiter);
    for (const name of ["a", "b", "c"]) call(name);
    expect(events).toEqual(["a runs", "b runs", "c runs"]);
  });
});
