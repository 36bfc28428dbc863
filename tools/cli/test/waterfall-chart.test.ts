// The trace waterfall: rows laid out from a small set of spans as the
// receiver keeps them, and the SVG drawn from them.
import { describe, expect, it } from "vitest";
import { renderSvg } from "../src/experiment/charts.js";
import { waterfallChart, waterfallRows } from "../src/experiment/waterfall-chart.js";
import type { ReceivedSpan } from "../src/tracing/otlp-receiver.js";

const t0 = 1_700_000_000_000;
const traceId = "0af7651916cd43dd8448eb211c80319c";

function span(
  fields: Partial<ReceivedSpan> & Pick<ReceivedSpan, "service" | "spanId" | "parentSpanId" | "name" | "kind">,
  fromMs: number,
  toMs: number,
): ReceivedSpan {
  return {
    traceId,
    attributes: {},
    events: [],
    status: { code: "unset", message: "" },
    ...fields,
    startMs: t0 + fromMs,
    endMs: t0 + toMs,
  };
}

const method = (service: string, name: string) => `shopmesh.${service}.v1.${name}`;

// A view whose products request hit its deadline, given in arrival order (children before parents, as exported).
const spans: ReceivedSpan[] = [
  span(
    {
      service: "products",
      spanId: "p1",
      parentSpanId: "c3",
      name: method("products", "ProductsService/BatchGetProducts"),
      kind: "server",
      attributes: { "rpc.method": "BatchGetProducts", "rpc.grpc.status_code": 4 },
      status: { code: "error", message: "deadline exceeded" },
    },
    6,
    306.5,
  ),
  span(
    {
      service: "users",
      spanId: "u1",
      parentSpanId: "c1",
      name: method("users", "UsersService/GetUser"),
      kind: "server",
      attributes: { "rpc.method": "GetUser", "rpc.grpc.status_code": 0 },
    },
    1.5,
    2.5,
  ),
  span(
    {
      service: "user-orders",
      spanId: "c3",
      parentSpanId: "v",
      name: method("products", "ProductsService/BatchGetProducts"),
      kind: "client",
      attributes: {
        "rpc.method": "BatchGetProducts",
        "peer.service": "products",
        "shopmesh.attempt": 1,
        "shopmesh.hedge": false,
        "rpc.grpc.status_code": 4,
      },
      status: { code: "error", message: "deadline exceeded" },
    },
    5,
    305,
  ),
  span(
    {
      service: "user-orders",
      spanId: "c1",
      parentSpanId: "v",
      name: method("users", "UsersService/GetUser"),
      kind: "client",
      attributes: {
        "rpc.method": "GetUser",
        "peer.service": "users",
        "shopmesh.attempt": 1,
        "rpc.grpc.status_code": 0,
      },
    },
    1,
    3,
  ),
  span(
    {
      service: "user-orders",
      spanId: "c2",
      parentSpanId: "v",
      name: method("orders", "OrdersService/ListOrders"),
      kind: "client",
      attributes: {
        "rpc.method": "ListOrders",
        "peer.service": "orders",
        "shopmesh.attempt": 2,
        "rpc.grpc.status_code": 0,
      },
    },
    1.2,
    4,
  ),
  span(
    {
      service: "user-orders",
      spanId: "c4",
      parentSpanId: "v",
      name: method("products", "ProductsService/BatchGetProducts"),
      kind: "client",
      attributes: {
        "rpc.method": "BatchGetProducts",
        "peer.service": "products",
        "shopmesh.attempt": 1,
        "shopmesh.hedge": true,
        "rpc.grpc.status_code": 1,
      },
      status: { code: "error", message: "another request answered first" },
    },
    55,
    305,
  ),
  span(
    {
      service: "user-orders",
      spanId: "v",
      // The caller's span, not in the trace: the view is the root.
      parentSpanId: "b7ad6b7169203331",
      name: method("userorders", "UserOrdersService/GetUserOrders"),
      kind: "server",
      attributes: { "rpc.method": "GetUserOrders", "rpc.grpc.status_code": 0 },
      events: [
        {
          name: "degradation",
          timeMs: t0 + 306,
          attributes: { "peer.service": "products", "shopmesh.fallback": "NO_PRODUCT_DETAILS", "shopmesh.code": 4 },
        },
      ],
    },
    0,
    307,
  ),
];

describe("waterfallRows", () => {
  const { rows, events } = waterfallRows(spans);

  it("puts every span under its parent, children in the order they started, from the trace's start", () => {
    expect(rows.map((r) => [r.depth, r.label])).toEqual([
      [0, "user-orders GetUserOrders"],
      [1, "→ users GetUser"],
      [2, "users GetUser"],
      [1, "→ orders ListOrders, retry 1"],
      [1, "→ products BatchGetProducts"],
      [2, "products BatchGetProducts"],
      [1, "→ products BatchGetProducts, hedge"],
    ]);
    expect(rows.map((r) => r.row)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(rows[0]).toMatchObject({ startMs: 0, endMs: 307 });
    expect(rows[5]).toMatchObject({ startMs: 6, endMs: 306.5 });
  });

  it("colours by kind, failures red and cancelled requests apart, and notes duration and status", () => {
    expect(rows.map((r) => r.kind)).toEqual(["server", "client", "server", "client", "failed", "failed", "cancelled"]);
    expect(rows[0]!.note).toBe("307.0 ms");
    expect(rows[4]!.note).toBe("300.0 ms DEADLINE_EXCEEDED");
    expect(rows[6]!.note).toBe("250.0 ms CANCELLED");
  });

  it("places span events on their span's row, named with the dependency and the fallback", () => {
    expect(events).toEqual([{ row: 0, atMs: 306, label: "degradation: products NO_PRODUCT_DETAILS" }]);
  });

  it("draws nothing for no spans", () => {
    expect(waterfallRows([])).toEqual({ rows: [], events: [] });
  });
});

describe("waterfallChart", () => {
  it("renders an SVG with a row per span, the statuses, the event and the deadline marker", async () => {
    const svg = await renderSvg(
      waterfallChart({ text: "products hung" }, spans, [{ atMs: t0 + 305, label: "products deadline (300 ms)" }]),
    );
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toContain("products hung");
    for (const text of [
      "user-orders GetUserOrders",
      "→ orders ListOrders, retry 1",
      "products BatchGetProducts",
      "300.0 ms DEADLINE_EXCEEDED",
      "250.0 ms CANCELLED",
      "degradation: products NO_PRODUCT_DETAILS",
      "products deadline (300 ms)",
      "ms since the trace began",
    ]) {
      expect(svg).toContain(text.replace(">", "&gt;"));
    }
    // Seven bars, coloured by kind: the failed ones red, the cancelled hedge grey.
    expect(svg.match(/role-mark/g)?.length).toBeGreaterThan(0);
    expect(svg.match(/fill="#c62828"/g)?.length).toBeGreaterThanOrEqual(2);
    expect(svg).toContain('fill="#9e9e9e"');
  });
});
