// The admission limiter on its own: slots, a first-come-first-served queue,
// the refusal at once of a call whose expected wait is longer than it can
// afford (MAX_QUEUE_WAIT, or half the deadline), a queued call keeping its
// place, and the refusal of the queue by a stuck server, on fake time.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CallLimiter } from "../src/server/admission.js";

interface Recorded {
  events: string[];
  /** Asks for a slot for call `name`; returns the function that ends it, after `heldMs` in its slot if it ran. */
  call(name: string, timeLeftMs?: number): (heldMs?: number) => void;
}

/** A limiter whose calls so far held their slot `holdMs` each: with a hold measured, it may queue. */
function warmedUp(settings: ConstructorParameters<typeof CallLimiter>[0], holdMs = 10): CallLimiter {
  const limiter = new CallLimiter(settings);
  expect(limiter.tryAcquire()).toBe(true);
  limiter.release(holdMs);
  return limiter;
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
    const limiter = warmedUp({ maxCallsInFlight: 2, maxCallsQueued: 3, maxQueueWaitMs: 1_000 });
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
    const limiter = warmedUp({ maxCallsInFlight: 1, maxCallsQueued: 2, maxQueueWaitMs: 1_000 });
    const { events, call } = recorder(limiter);
    const endA = call("a");
    call("b");
    endA();
    call("c");
    expect(events).toEqual(["a runs", "b runs"]);
    expect(limiter.waiting).toBe(1);
  });

  it("queues nothing before a call has given its slot back: with no hold time measured, no wait can be promised", () => {
    const limiter = new CallLimiter({ maxCallsInFlight: 1, maxCallsQueued: 5, maxQueueWaitMs: 1_000 });
    const { events, call } = recorder(limiter);
    const endFirst = call("first");
    call("second");
    expect(events).toEqual([
      "first runs",
      "second refused: server overloaded: 1 calls in progress, no call has finished yet to tell how long a wait would be",
    ]);
    endFirst(10);
    call("third");
    call("fourth");
    expect(events.slice(2)).toEqual(["third runs"]);
    expect(limiter.waiting).toBe(1);
  });

  it("keeps a queued call's place past its expected wait, for as long as slots keep coming free", () => {
    const limiter = warmedUp({ maxCallsInFlight: 1, maxCallsQueued: 5, maxQueueWaitMs: 100 });
    const { events, call } = recorder(limiter);
    const endA = call("a");
    const endB = call("b", 1_000);
    call("c");
    // a holds its slot 300 ms, thirty times the 10 ms the estimate assumed, and three times MAX_QUEUE_WAIT.
    vi.advanceTimersByTime(300);
    expect(events).toEqual(["a runs"]);
    endA(300);
    expect(events).toEqual(["a runs", "b runs"]);
    // c has waited 650 ms, but a slot came free 350 ms ago: the server is slow, not stuck.
    vi.advanceTimersByTime(350);
    expect(limiter.waiting).toBe(1);
    endB(350);
    expect(events).toEqual(["a runs", "b runs", "c runs"]);
  });

  it("refuses what waits only when no slot has come free for 4 × MAX_QUEUE_WAIT: a stuck server", () => {
    const limiter = warmedUp({ maxCallsInFlight: 1, maxCallsQueued: 5, maxQueueWaitMs: 100 });
    const { events, call } = recorder(limiter);
    call("stuck");
    call("first waiting");
    call("second waiting");
    vi.advanceTimersByTime(399);
    expect(events).toEqual(["stuck runs"]);
    vi.advanceTimersByTime(1);
    expect(events.slice(1)).toEqual([
      "first waiting refused: server overloaded: 1 calls in progress, and none has finished for 400 ms",
      "second waiting refused: server overloaded: 1 calls in progress, and none has finished for 400 ms",
    ]);
    expect(limiter.waiting).toBe(0);
  });

  it("forgets a waiting call that ends before its turn", () => {
    const limiter = warmedUp({ maxCallsInFlight: 1, maxCallsQueued: 1, maxQueueWaitMs: 1_000 });
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
    const limiter = warmedUp({ maxCallsInFlight: 1, maxCallsQueued: 1, maxQueueWaitMs: 1_000 });
    const { events, call } = recorder(limiter);
    call("a");
    call("expired", 0);
    call("b");
    call("c");
    expect(events).toEqual([
      "a runs",
      "expired refused: server overloaded: 1 calls in progress, a wait of about 10 ms expected, 0 ms affordable",
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

  it("takes the hold as at least the mean time the running calls have held their slots, so that growing holds show at once", () => {
    const limiter = warmedUp({ maxCallsInFlight: 2, maxCallsQueued: 10, maxQueueWaitMs: 250 });
    const { events, call } = recorder(limiter);
    call("a");
    vi.advanceTimersByTime(200);
    call("b");
    // a has run 200 ms and b 0 ms: holds of at least 100 ms, not the 10 ms the one finished call held.
    vi.advanceTimersByTime(100);
    // Now 300 and 100 ms: 200 ms on average, so the 1st place expects 100 ms, the 2nd 200 ms, the 3rd 300 ms.
    for (const name of ["w1", "w2", "w3"]) call(name);
    expect(limiter.waiting).toBe(2);
    expect(events.at(-1)).toBe(
      "w3 refused: server overloaded: 2 calls in progress, a wait of about 300 ms expected, 250 ms affordable",
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
