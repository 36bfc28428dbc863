// The pushback sent with each refusal, on a fake clock: it follows the ratio
// of refused to admitted calls, window by window, within its bounds.
import { describe, expect, it } from "vitest";
import { RetryPushback } from "../src/server/retry-pushback.js";

function fakeClock() {
  let now = 0;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

/** A window of `admitted` admissions and `refused` refusals, then the window's end. */
function window(pushback: RetryPushback, clock: ReturnType<typeof fakeClock>, admitted: number, refused: number) {
  for (let i = 0; i < admitted; i++) pushback.admitted();
  for (let i = 0; i < refused; i++) pushback.refused();
  clock.advance(500);
}

describe("RetryPushback", () => {
  it("grows while refusals outnumber admissions, by at most four times a window, up to its longest", () => {
    const clock = fakeClock();
    const pushback = new RetryPushback({ now: clock.now, random: () => 0.5, minMs: 50, maxMs: 2_000 });
    expect(pushback.currentMs).toBe(50);
    window(pushback, clock, 10, 30);
    expect(pushback.currentMs).toBe(150);
    window(pushback, clock, 10, 1_000);
    expect(pushback.currentMs).toBe(600);
    window(pushback, clock, 0, 50);
    expect(pushback.currentMs).toBe(2_000);
    window(pushback, clock, 1, 50);
    expect(pushback.currentMs).toBe(2_000);
  });

  it("holds at about one refusal per admission, shrinks below it, and halves in a window without refusals", () => {
    const clock = fakeClock();
    const pushback = new RetryPushback({ now: clock.now, random: () => 0.5 });
    window(pushback, clock, 1, 40);
    window(pushback, clock, 1, 40);
    expect(pushback.currentMs).toBe(800);
    window(pushback, clock, 20, 20);
    expect(pushback.currentMs).toBe(800);
    window(pushback, clock, 20, 15);
    expect(pushback.currentMs).toBe(600);
    window(pushback, clock, 20, 1);
    expect(pushback.currentMs).toBe(300);
    window(pushback, clock, 20, 0);
    expect(pushback.currentMs).toBe(150);
  });

  it("returns to its shortest after a long quiet spell", () => {
    const clock = fakeClock();
    const pushback = new RetryPushback({ now: clock.now, random: () => 0.5, maxMs: 10_000 });
    for (let i = 0; i < 5; i++) window(pushback, clock, 1, 100);
    expect(pushback.currentMs).toBe(10_000);
    clock.advance(60_000);
    expect(pushback.currentMs).toBe(50);
  });

  it("tells each refused caller a whole number of ms within ±50 % of the pushback", () => {
    const clock = fakeClock();
    const draws = [0, 0.999, 0.25];
    const pushback = new RetryPushback({ now: clock.now, random: () => draws.shift()!, minMs: 100 });
    expect([pushback.refused(), pushback.refused(), pushback.refused()]).toEqual([50, 150, 75]);
  });

  it("refuses bounds that make no sense", () => {
    expect(() => new RetryPushback({ minMs: 0 })).toThrow(RangeError);
    expect(() => new RetryPushback({ minMs: 100, maxMs: 50 })).toThrow(RangeError);
  });
});
