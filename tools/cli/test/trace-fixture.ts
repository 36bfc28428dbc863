// A small trace for the waterfall and report specs: a view whose products
// request hit its deadline, with a hedge to products that was cancelled.
import type { ReceivedSpan } from "../src/tracing/otlp-receiver.js";

export const t0 = 1_700_000_000_000;
export const traceId = "0af7651916cd43dd8448eb211c80319c";

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
    links: [],
    ...fields,
    startMs: t0 + fromMs,
    endMs: t0 + toMs,
  };
}

const method = (service: string, name: string) => `shopmesh.${service}.v1.${name}`;

// A view whose products request hit its deadline, given in arrival order (children before parents, as exported).
export const spans: ReceivedSpan[] = [
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
