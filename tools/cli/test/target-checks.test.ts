// The bench's targets read from its rows: verdicts at the target level, the
// ceilings a throughput row's CPU per call allows, and the aggregator's check
// priced against what its calls alone cost.
import { describe, expect, it } from "vitest";
import type { StepResult } from "../src/bench/bench-results.js";
import { checkTargets } from "../src/bench/target-checks.js";

function step(target: StepResult["target"], fields: Partial<StepResult>): StepResult {
  return {
    target,
    title: target,
    concurrency: 64,
    calls: 1000,
    errors: 0,
    degraded: 0,
    elapsedSeconds: 1,
    callsPerSecond: 1000,
    latencyMs: { p50: 1, p90: 1, p99: 1, p999: 1, max: 1, mean: 1 },
    baseline: "bare.tls",
    ratioToBaseline: 1,
    clientCpuMicrosPerCall: 0,
    serverCpuMicrosPerCall: null,
    serverCpuMicrosPerCallByProcess: {},
    ...fields,
  };
}

const bareTls = step("bare.tls", { clientCpuMicrosPerCall: 200, serverCpuMicrosPerCall: 100 });
const view = step("user-orders.GetUserOrders", {
  callsPerSecond: 300,
  ratioToBaseline: 0.06,
  serverCpuMicrosPerCall: 3000,
  serverCpuMicrosPerCallByProcess: { "user-orders": 1800, users: 400, orders: 500, products: 300 },
});

describe("checkTargets", () => {
  it("reads user-orders' CPU per view against its dependencies' together", () => {
    const check = checkTargets([bareTls, view], []).find((candidate) => candidate.unit.includes("dependencies"));
    expect(check?.measured).toBeCloseTo(1.5, 6);
    expect(check?.pass).toBe(false);
    expect(check?.detail).toContain("user-orders 1,800 µs vs 1,200 µs");
  });

  it("prices the view's calls alone from the bare server's row: one served and three sent against three served", () => {
    const check = checkTargets([bareTls, view], []).find((candidate) => candidate.unit.includes("dependencies"));
    // (100 + 3 × 200) / (3 × 100)
    expect(check?.detail).toContain(
      "100 µs per call served by the bare server, 200 µs per call sent by the bench client",
    );
    expect(check?.detail).toMatch(/the ratio would be 2\.33x$/);
  });

  it("leaves the calls' price out when the bare server's CPU was not read", () => {
    const unread = { ...bareTls, serverCpuMicrosPerCall: null };
    const check = checkTargets([unread, view], []).find((candidate) => candidate.unit.includes("dependencies"));
    expect(check?.detail).not.toContain("empty calls alone");
  });

  it("leaves the calls' price out when told to (the bench client ran on another Node.js than the servers)", () => {
    const check = checkTargets([bareTls, view], [], { priceCallsAlone: false }).find((candidate) =>
      candidate.unit.includes("dependencies"),
    );
    expect(check?.detail).toContain("user-orders 1,800 µs vs 1,200 µs");
    expect(check?.detail).not.toContain("empty calls alone");
  });

  it("passes when user-orders costs no more than its dependencies", () => {
    const cheap = step("user-orders.GetUserOrders", {
      serverCpuMicrosPerCallByProcess: { "user-orders": 1200, users: 400, orders: 500, products: 300 },
    });
    const check = checkTargets([bareTls, cheap], []).find((candidate) => candidate.unit.includes("dependencies"));
    expect(check?.pass).toBe(true);
  });

  describe("the shares a throughput row's CPU per call allows", () => {
    // The bare row's client: 5,000 calls/s at 200 µs each keeps it busy for 1.00 cores.
    const busyBare = step("bare.tls", {
      callsPerSecond: 5000,
      clientCpuMicrosPerCall: 200,
      serverCpuMicrosPerCall: 100,
    });
    const product = step("products.GetProduct", {
      callsPerSecond: 3000,
      ratioToBaseline: 0.6,
      clientCpuMicrosPerCall: 250,
      serverCpuMicrosPerCall: 150,
    });
    const getProduct = (checks: ReturnType<typeof checkTargets>) =>
      checks.find((candidate) => candidate.name.startsWith("products.GetProduct"));
    const measured = "3,000 calls/s vs 5,000 for the bare server over TLS at 64 in flight";

    it("gives the share the cores allow, and the client's when the bare row kept the client busy", () => {
      const check = getProduct(checkTargets([busyBare, product], [], { cores: 2 }));
      expect(check?.pass).toBe(false);
      // 2 cores at 250 + 150 µs per call give 5,000 calls/s, all of the bare rate; the client's is 200 / 250.
      expect(check?.detail).toBe(
        `${measured}; at this CPU per call 2 cores allow 100.0 % (400 µs of CPU per call, the client's and the servers' together), ` +
          "and the bench client, as busy as in the bare row (1.00 cores there, 0.75 here), would allow about 80.0 % " +
          "(200 µs of its CPU per bare call against 250 here)",
      );
    });

    it("gives the client's share from nine tenths of a core in the bare row, and not below", () => {
      const atThreshold = { ...busyBare, callsPerSecond: 4500 };
      expect(getProduct(checkTargets([atThreshold, product], []))?.detail).toBe(
        "3,000 calls/s vs 4,500 for the bare server over TLS at 64 in flight; at this CPU per call the bench client, " +
          "as busy as in the bare row (0.90 cores there, 0.75 here), would allow about 80.0 % (200 µs of its CPU per bare call against 250 here)",
      );
      const idleClient = { ...busyBare, callsPerSecond: 4000 };
      expect(getProduct(checkTargets([idleClient, product], [], { cores: 2 }))?.detail).toBe(
        "3,000 calls/s vs 4,000 for the bare server over TLS at 64 in flight; at this CPU per call 2 cores allow 125.0 % " +
          "(400 µs of CPU per call, the client's and the servers' together)",
      );
    });

    it("gives no cores' share without the machine's cores or the row's server CPU, and nothing without the bare row", () => {
      const clientOnly =
        "; at this CPU per call the bench client, as busy as in the bare row (1.00 cores there, 0.75 here), would allow about 80.0 % " +
        "(200 µs of its CPU per bare call against 250 here)";
      expect(getProduct(checkTargets([busyBare, product], []))?.detail).toBe(measured + clientOnly);
      const unread = { ...product, serverCpuMicrosPerCall: null };
      expect(getProduct(checkTargets([busyBare, unread], [], { cores: 2 }))?.detail).toBe(measured + clientOnly);
      expect(getProduct(checkTargets([product], [], { cores: 2 }))?.detail).toBe(
        "3,000 calls/s vs 0 for the bare server over TLS at 64 in flight",
      );
    });
  });
});
