// The admission limiter on its own: slots, a first-come-first-served queue,
// the wait limit (MAX_QUEUE_WAIT, or half the deadline), and the refusal at
// once of a call whose expected wait is longer than that, on fake time.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CallLimiter } from "../src/server/admission.js";

interface Recorded {
  events: string[];
  /** Asks for a slot for call `name`; returns the function that ends it, after `heldMs` in its slot if it ran. */
  call(name: string, timeLeftMs?: number): (heldMs?: number) => void;
}

/** Drives the limiter as the call gate does: a free slot first, else the queue. */
function recorder(limiter: CallLimiter): Recorded {
  const events: string[] = [];
  return {
    events,
    call(name, timeLeftMs) {
      let running = false;
      if (limiter.tryAcquire()) {
        running = true;
        events.push(`${name} runs`);
      }
      const waiter = running
        ? undefined
        : limiter.wait(
            timeLeftMs,
            () => {
              running = true;
              events.push(`${name} runs`);
            },
            (details) => events.push(`${name} refused: ${details}`),
          );
      let ended = false;
      return (heldMs = 10) => {
        if (ended) return;
        ended = true;
        if (running) limiter.release(heldMs);
        else if (waiter !== undefined) limiter.leave(waiter);
      };
    },
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
    expect(events.at(-1)).toBe(
      "short deadline refused: server overloaded: 1 calls in progress; no slot came free within 100 ms",
    );
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
      "expired refused: server overloaded: 1 calls in progress, a wait of about 0 ms expected, 0 ms affordable",
      "c refused: server overloaded: 1 calls in progress, 1 waiting",
    ]);
  });

  it("refuses at once a call whose expected wait (its queue place × the mean hold time ÷ slots) is longer than it can afford", () => {
    const limiter = new CallLimiter({ maxCallsInFlight: 2, maxCallsQueued: 100, maxQueueWaitMs: 250 });
    const { events, call } = recorder(limiter);
    // Calls that held their slot 100 ms each: slots free at 2 per 100 ms, one every 50 ms.
    for (let n = 0; n < 4; n++) call(`warm-up ${n}`)(100);
    expect(limiter.meanHoldMs).toBe(100);
    call("a");
    call("b");
    for (const name of ["w1", "w2", "w3", "w4", "w5", "w6"]) call(name);
    // w1 to w5 expect 50 to 250 ms; w6 expects 300 ms, more than MAX_QUEUE_WAIT, and is refused without waiting.
    expect(limiter.waiting).toBe(5);
    expect(events.at(-1)).toBe(
      "w6 refused: server overloaded: 2 calls in progress, a wait of about 300 ms expected, 250 ms affordable",
    );
    // A deadline of 300 ms affords 150 ms of waiting: the 6th place (300 ms expected) is too far back.
    call("deadline", 300);
    expect(events.at(-1)).toBe(
      "deadline refused: server overloaded: 2 calls in progress, a wait of about 300 ms expected, 150 ms affordable",
    );
    expect(limiter.waiting).toBe(5);
  });

  it("queues a call only when its expected wait plus twice its spread (√place × the holds' deviation ÷ slots) is affordable", () => {
    const limiter = new CallLimiter({ maxCallsInFlight: 1, maxCallsQueued: 100, maxQueueWaitMs: 250 });
    const { events, call } = recorder(limiter);
    // Holds of 20 and 80 ms in turn: a mean near 50 ms that single holds miss by about 30 ms.
    for (let n = 0; n < 200; n++) call(`warm-up ${n}`)(n % 2 === 0 ? 20 : 80);
    expect(limiter.meanHoldMs).toBeGreaterThan(45);
    expect(limiter.meanHoldMs).toBeLessThan(55);
    expect(limiter.holdDeviationMs).toBeGreaterThan(25);
    expect(limiter.holdDeviationMs).toBeLessThan(35);
    call("running");
    const expected = (place: number) => place * limiter.meanHoldMs;
    const worst = (place: number) => expected(place) + 2 * Math.sqrt(place) * limiter.holdDeviationMs;
    // On the mean alone five places fit in 250 ms; with the spread only the places whose worst case fits.
    const fitting = [1, 2, 3, 4, 5].filter((place) => worst(place) <= 250).length;
    expect(fitting).toBeLessThan(5);
    expect(fitting).toBeGreaterThan(0);
    for (let place = 1; place <= 5; place++) call(`w${place}`);
    expect(limiter.waiting).toBe(fitting);
    // The refused ones were offered the place after the last that fits.
    const next = fitting + 1;
    expect(events.at(-1)).toBe(
      `w5 refused: server overloaded: 1 calls in progress, a wait of about ${Math.round(expected(next))} ms expected (up to ${Math.round(worst(next))} ms), 250 ms affordable`,
    );
  });

  it("keeps a running mean of the hold times, so that the estimate follows a change", () => {
    const limiter = new CallLimiter({ maxCallsInFlight: 1, maxCallsQueued: 10, maxQueueWaitMs: 250 });
    const { call } = recorder(limiter);
    call("slow")(1_000);
    expect(limiter.meanHoldMs).toBe(1_000);
    for (let n = 0; n < 100; n++) call(`fast ${n}`)(10);
    expect(limiter.meanHoldMs).toBeLessThan(20);
  });
});
