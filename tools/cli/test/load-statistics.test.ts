// The figures `shopmesh soak` and `shopmesh overload` compute: slopes,
// quantiles, per-window aggregation, the fault schedule and which failures
// it explains. Pure functions, no processes.
import { describe, expect, it } from "vitest";
import { faultsBetween, isExplained, operations, soakSchedule } from "../src/robustness/fault-schedule.js";
import { leastSquaresSlope, quantile, sumTallies, tally } from "../src/robustness/load-statistics.js";
import { WindowAccumulator } from "../src/robustness/soak-windows.js";

describe("leastSquaresSlope", () => {
  it("finds the slope of points on a line, and of noisy points around it", () => {
    expect(leastSquaresSlope([0, 1, 2, 3].map((x) => ({ x, y: 2 * x + 1 })))).toBeCloseTo(2, 12);
    // Symmetric noise leaves the slope alone.
    expect(
      leastSquaresSlope([
        { x: 0, y: 1 },
        { x: 1, y: 4 },
        { x: 2, y: 4 },
        { x: 3, y: 7 },
      ]),
    ).toBeCloseTo(1.8, 12);
    expect(
      leastSquaresSlope([0, 1, 2, 3, 4].map((x) => ({ x, y: 100 - 0.5 * x + (x % 2 === 0 ? 0.1 : -0.1) }))),
    ).toBeCloseTo(-0.5, 1);
    expect(
      leastSquaresSlope([
        { x: 0, y: 5 },
        { x: 10, y: 5 },
      ]),
    ).toBe(0);
  });

  it("has no slope with fewer than two distinct x", () => {
    expect(leastSquaresSlope([])).toBeUndefined();
    expect(leastSquaresSlope([{ x: 1, y: 1 }])).toBeUndefined();
    expect(
      leastSquaresSlope([
        { x: 1, y: 1 },
        { x: 1, y: 3 },
      ]),
    ).toBeUndefined();
  });
});

describe("quantile and tallies", () => {
  it("takes the nearest rank", () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(quantile(values, 0.5)).toBe(50);
    expect(quantile(values, 0.99)).toBe(99);
    expect(quantile(values, 1)).toBe(100);
    expect(quantile(values, 0)).toBe(1);
    expect(quantile([], 0.5)).toBeUndefined();
  });

  it("adds counts up", () => {
    const a: Record<string, number> = {};
    tally(a, "UNAVAILABLE");
    tally(a, "UNAVAILABLE", 2);
    tally(a, "INTERNAL");
    expect(a).toEqual({ UNAVAILABLE: 3, INTERNAL: 1 });
    expect(sumTallies([a, { UNAVAILABLE: 1, DEADLINE_EXCEEDED: 4 }])).toEqual({
      UNAVAILABLE: 4,
      INTERNAL: 1,
      DEADLINE_EXCEEDED: 4,
    });
  });
});

describe("WindowAccumulator", () => {
  it("counts calls, errors by code, unexpected ones and degraded views, and times every call", () => {
    const window = new WindowAccumulator(2, 10_000, 15_000);
    for (let i = 1; i <= 98; i++) window.add("GetProduct", "OK", i, false, false);
    window.add("GetUserOrders STRONG", "OK", 300, false, true);
    window.add("SignIn", "UNAVAILABLE", 5000, false, false);
    window.add("CreateOrder", "INTERNAL", 2, true, false);
    const memory = new Map([["orders" as const, { rssBytes: 64 * 1024 * 1024, heapUsedBytes: 16 * 1024 * 1024 }]]);
    const summary = window.summary(["users-errors"], memory);
    expect(summary).toMatchObject({
      index: 2,
      fromSeconds: 10,
      toSeconds: 15,
      calls: 101,
      callsPerSecond: 101 / 5,
      errors: { UNAVAILABLE: 1, INTERNAL: 1 },
      unexpected: 1,
      degraded: 1,
      faults: ["users-errors"],
      memory: { orders: { rssMiB: 64, heapUsedMiB: 16 } },
    });
    // HdrHistogram keeps three significant digits.
    expect(summary.p50Ms).toBeCloseTo(50, 1);
    expect(summary.p99Ms).toBeCloseTo(300, 0);
    expect(summary.byOperation.GetProduct).toMatchObject({ calls: 98, errors: 0 });
    expect(summary.byOperation.SignIn).toMatchObject({ calls: 1, errors: 1 });
    expect(summary.byOperation.SignIn.p99Ms).toBeCloseTo(5000, -1);
    expect(summary.byOperation["GetUserOrders EVENTUAL"]).toEqual({ calls: 0, errors: 0, p50Ms: 0, p99Ms: 0 });
  });
});

describe("the soak's fault schedule", () => {
  it("repeats a cycle of three faults, none overlapping, none in the last tenth of the run", () => {
    const tenMinutes = soakSchedule(600_000);
    // Five two-minute cycles; the last loses the two faults that would reach into the last minute.
    expect(tenMinutes).toHaveLength(13);
    expect(tenMinutes.slice(0, 3)).toEqual([
      { kind: "products-latency", fromMs: 18_000, toMs: 42_000 },
      { kind: "users-errors", fromMs: 54_000, toMs: 78_000 },
      { kind: "products-hang", fromMs: 90_000, toMs: 98_400 },
    ]);
    for (const [index, phase] of tenMinutes.entries()) {
      expect(phase.toMs).toBeLessThanOrEqual(540_000);
      if (index > 0) expect(phase.fromMs).toBeGreaterThan(tenMinutes[index - 1]!.toMs);
    }
    // A short run still sees every fault.
    expect(new Set(soakSchedule(15_000).map((phase) => phase.kind))).toEqual(
      new Set(["products-latency", "users-errors", "products-hang"]),
    );
  });

  it("explains only the failures a fault in force can cause; INTERNAL and UNKNOWN never", () => {
    expect(isExplained("SignIn", "UNAVAILABLE", ["users-errors"])).toBe(true);
    expect(isExplained("SignIn", "UNAVAILABLE", ["products-hang"])).toBe(false);
    expect(isExplained("SignIn", "UNAVAILABLE", [])).toBe(false);
    expect(isExplained("GetProduct", "DEADLINE_EXCEEDED", ["products-hang"])).toBe(true);
    expect(isExplained("GetProduct", "DEADLINE_EXCEEDED", ["products-latency"])).toBe(false);
    expect(isExplained("CreateOrder", "UNAVAILABLE", ["products-hang"])).toBe(true);
    // A STRONG view degrades when a dependency fails; it does not fail.
    expect(isExplained("GetUserOrders STRONG", "UNAVAILABLE", ["users-errors", "products-hang"])).toBe(false);
    for (const operation of operations) {
      for (const code of ["INTERNAL", "UNKNOWN"])
        expect(isExplained(operation, code, ["products-latency", "users-errors", "products-hang"])).toBe(false);
    }
  });

  it("finds the faults in force at some time during a call", () => {
    const phases = [
      { kind: "products-latency" as const, fromMs: 100, toMs: 200 },
      { kind: "users-errors" as const, fromMs: 300, toMs: 400 },
    ];
    expect(faultsBetween(phases, 0, 99)).toEqual(new Set());
    expect(faultsBetween(phases, 150, 160)).toEqual(new Set(["products-latency"]));
    expect(faultsBetween(phases, 190, 310)).toEqual(new Set(["products-latency", "users-errors"]));
    expect(faultsBetween(phases, 201, 299)).toEqual(new Set());
    // A hang is felt until the calls it caught reach their deadlines.
    const hang = [{ kind: "products-hang" as const, fromMs: 100, toMs: 200 }];
    expect(faultsBetween(hang, 250, 260, { "products-hang": 100 })).toEqual(new Set(["products-hang"]));
    expect(faultsBetween(hang, 301, 310, { "products-hang": 100 })).toEqual(new Set());
  });
});
