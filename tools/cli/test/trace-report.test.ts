// The Traces section: when a trace counts as complete, the deadline and
// hedge markers, and sentences drawn from the spans.
import { describe, expect, it } from "vitest";
import { traceComplete, type TracedView, type TracesResult } from "../src/experiment/scenarios/traces.js";
import { tracesSection, waterfallMarkers } from "../src/experiment/trace-report.js";
import type { ReceivedSpan } from "../src/tracing/otlp-receiver.js";
import { spans, t0, traceId } from "./trace-fixture.js";

const timings: TracedView["timings"] = [
  { dependency: "users", durationMs: 2, timeoutMs: 300, attempts: 1, hedges: 0, code: "OK" },
  { dependency: "orders", durationMs: 2.8, timeoutMs: 500, attempts: 1, hedges: 0, code: "OK" },
  { dependency: "products", durationMs: 300, timeoutMs: 300, attempts: 1, hedges: 1, code: "DEADLINE_EXCEEDED" },
];
// The server spans the fixture leaves out (orders', and products' for the hedge): with them the trace is whole.
const hedgeServer: ReceivedSpan = { ...spans.find((s) => s.spanId === "p1")!, spanId: "p2", parentSpanId: "c4" };
const ordersServer: ReceivedSpan = {
  ...spans.find((s) => s.spanId === "u1")!,
  service: "orders",
  spanId: "o1",
  parentSpanId: "c2",
  name: "shopmesh.orders.v1.OrdersService/ListOrders",
  attributes: { "rpc.method": "ListOrders", "rpc.grpc.status_code": 0 },
};
const whole = [...spans, ordersServer, hedgeServer];

const view = (name: TracedView["name"]): TracedView => ({
  name,
  traceId,
  setUp: "products' BatchGetProducts hangs",
  latencyMs: 308,
  code: "OK",
  degradations: [{ dependency: "products", fallback: "NO_PRODUCT_DETAILS", code: "DEADLINE_EXCEEDED" }],
  timings,
  spans: whole,
  complete: true,
  tries: 1,
});
const result = (views: TracedView[]): TracesResult => ({
  views,
  hedge: { delayMs: 50, slowMs: 200, slowProbability: 0.5, maxTries: 10 },
  callTimeoutMs: 1000,
  spansReceived: 42,
  seconds: 2.5,
  restartSeconds: 1.5,
});

describe("traceComplete", () => {
  it("wants the view's span, a client span per request the timings count, and a server span under each", () => {
    expect(traceComplete(whole, timings)).toBe(true);
    // Orders' server span has not arrived.
    expect(
      traceComplete(
        whole.filter((s) => s.spanId !== "o1"),
        timings,
      ),
    ).toBe(false);
    // The hedge's client span has not arrived.
    expect(
      traceComplete(
        whole.filter((s) => s.spanId !== "c4"),
        timings,
      ),
    ).toBe(false);
    // Nothing from user-orders yet.
    expect(
      traceComplete(
        whole.filter((s) => s.service !== "user-orders"),
        timings,
      ),
    ).toBe(false);
  });
});

describe("waterfallMarkers", () => {
  it("marks the deadline of a dependency whose request ran out of time, from the timeout the view reported", () => {
    expect(waterfallMarkers(view("products-hung"), 50)).toEqual([
      { atMs: t0 + 5 + 300, label: "products deadline (300.0 ms)" },
    ]);
  });

  it("marks the hedge delay from the first request to products in the hedged view", () => {
    expect(waterfallMarkers(view("hedged"), 50)).toContainEqual({ atMs: t0 + 5 + 50, label: "hedge delay (50 ms)" });
  });
});

describe("tracesSection", () => {
  it("says, from the spans, when the hung request ended, at which deadline, and when the fallback followed", () => {
    const text = tracesSection(result([view("products-hung")])).join("\n");
    expect(text).toContain("## 7. Traces");
    expect(text).toContain(`Its trace holds ${whole.length} spans`);
    expect(text).toContain("the receiver got 42 in the whole run");
    expect(text).toContain(
      "Products' BatchGetProducts request went out at 5.0 ms and ended at 305.0 ms with DEADLINE_EXCEEDED, after 300.0 ms; user-orders had given it a deadline of 300.0 ms, although the caller allowed 1000 ms.",
    );
    expect(text).toContain("Products' own span, hanging, ended at 306.5 ms");
    expect(text).toContain(
      "The degradation event (products, NO_PRODUCT_DETAILS) follows on the view's span at 306.0 ms, and the view answered OK at 307.0 ms",
    );
    expect(text).toContain("](coupling-trace-products-hung.svg)");
  });

  it("tells which of the hedged requests answered and which was cancelled", () => {
    const text = tracesSection(result([{ ...view("hedged"), tries: 3 }])).join("\n");
    expect(text).toContain(
      "The first request to products went out at 5.0 ms; with no answer after the hedge delay of 50 ms a second, identical request went out at 55.0 ms.",
    );
    // In the fixture the hedge lost (CANCELLED) and the first request ran out of time.
    expect(text).toContain("The first request ended with status 4 at 305.0 ms");
    expect(text).toContain("the hedge was cancelled at 305.0 ms");
    expect(text).toContain("This was the 3rd view sent");
  });

  it("says so when spans are missing", () => {
    const partial = { ...view("products-hung"), spans: spans.slice(0, 3), complete: false };
    expect(tracesSection(result([partial])).join("\n")).toContain(
      "(Only 3 of the trace's spans arrived within the wait.)",
    );
  });
});
