// A view with a traceparent, through real service processes that export
// their spans over OTLP/HTTP to a receiver in the test: one trace across all
// four services, a server span per call, a client span per downstream
// request (each retry its own, with its attempt number), and user-orders'
// log lines about those requests carrying the trace and span ids.
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminToken, signUpCustomer, TestMesh, type ServiceName } from "../support/mesh.js";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "@shopmesh/cli";

const traceId = "0af7651916cd43dd8448eb211c80319c";
const callerSpanId = "b7ad6b7169203331";
const services: ServiceName[] = ["users", "products", "orders", "user-orders"];
const server = "server";
const client = "client";

let receiver: OtlpReceiver;
let mesh: TestMesh;
let spans: ReceivedSpan[];

/** Polls until `check` holds, for at most `timeoutMs`. */
async function eventually(check: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await sleep(50);
  }
}

describe("a traced view through four service processes", { timeout: 90_000 }, () => {
  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    const tracing = {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      // Exported within a moment of ending rather than every 5 s.
      OTEL_BSP_SCHEDULE_DELAY: "100",
      // Every service then writes a call line for each call it answers, with its span's ids.
      LOG_LEVEL: "debug",
    };
    mesh = await TestMesh.start(services, {
      users: tracing,
      products: { ...tracing, FAULT_INJECTION: "on" },
      orders: tracing,
      "user-orders": tracing,
    });
    const admin = mesh.client("products", await adminToken(mesh));
    const product = (await admin.createProduct({ name: "Tea", price: { currencyCode: "EUR", minorUnits: 500n } }))
      .product!;
    const customer = await signUpCustomer(mesh, "traced");
    await mesh.client("orders", customer.token).createOrder({
      requestId: "traced-1",
      items: [{ productId: product.id, quantity: 1 }],
    });
    // Products fails every batch read: user-orders retries it twice.
    await mesh
      .faults("products")
      .setFault({ fault: { method: "BatchGetProducts", errorRate: 1, errorCode: "UNAVAILABLE" } });
    const view = await mesh
      .client("user-orders", customer.token)
      .getUserOrders(
        { userId: customer.userId },
        { timeoutMs: 3000, headers: { traceparent: `00-${traceId}-${callerSpanId}-01` } },
      );
    expect(view.degradations).toHaveLength(1);
    const ours = () => receiver.spans().filter((span) => span.traceId === traceId);
    // 1 + 1 + 1 + 3 server spans and 1 + 1 + 3 client spans.
    await eventually(
      () => ours().length >= 11,
      20_000,
      () => `11 spans of the trace; have ${JSON.stringify(ours().map((s) => `${s.service} ${s.name}`))}`,
    );
    spans = ours();
  });
  afterAll(async () => {
    await mesh?.stop();
    await receiver?.close();
  });

  it("has one server span for the view, a child of the caller's span, with the degradation as an event", () => {
    const view = spans.filter((s) => s.service === "user-orders" && s.kind === server);
    expect(view).toHaveLength(1);
    expect(view[0]).toMatchObject({
      name: "shopmesh.userorders.v1.UserOrdersService/GetUserOrders",
      parentSpanId: callerSpanId,
    });
    expect(view[0]!.attributes["rpc.grpc.status_code"]).toBe(0);
    expect(view[0]!.events.map((event) => event.name)).toContain("degradation");
  });

  it("has a client span per downstream request, retries numbered, each continued by the dependency's server span", () => {
    const viewSpan = spans.find((s) => s.service === "user-orders" && s.kind === server)!;
    const clients = spans.filter((s) => s.service === "user-orders" && s.kind === client);
    expect(clients.every((s) => s.parentSpanId === viewSpan.spanId)).toBe(true);
    const attempts = (name: string) =>
      clients
        .filter((s) => s.name === name)
        .map((s) => s.attributes["shopmesh.attempt"])
        .sort();
    expect(attempts("shopmesh.users.v1.UsersService/GetUser")).toEqual([1]);
    expect(attempts("shopmesh.orders.v1.OrdersService/ListOrders")).toEqual([1]);
    expect(attempts("shopmesh.products.v1.ProductsService/BatchGetProducts")).toEqual([1, 2, 3]);

    for (const [service, count] of [
      ["users", 1],
      ["orders", 1],
      ["products", 3],
    ] as const) {
      const served = spans.filter((s) => s.service === service && s.kind === server);
      expect(served, service).toHaveLength(count);
      for (const span of served) {
        const parent = clients.find((c) => c.spanId === span.parentSpanId);
        expect(parent?.name, `${service} ${span.name}`).toBe(span.name);
      }
    }
    const failed = spans.filter((s) => s.service === "products");
    expect(failed.every((s) => s.attributes["rpc.grpc.status_code"] === 14)).toBe(true);
  });

  it("puts the trace id in the logs of all four services: each one's call line for its part of the view", async () => {
    const callLines = (service: ServiceName) =>
      mesh.processes.get(service)!.logs.filter((line) => line.msg === "call" && line.trace_id === traceId);
    await eventually(
      () => services.every((service) => callLines(service).length > 0),
      10_000,
      () =>
        `a call line with the trace id from every service; have ${services.map((s) => `${s} ${callLines(s).length}`)}`,
    );
    for (const service of services) {
      const served = new Set(
        spans.filter((span) => span.service === service && span.kind === server).map((span) => span.spanId),
      );
      // Each line names the server span of the call it reports.
      for (const line of callLines(service)) expect(served.has(line.span_id as string), service).toBe(true);
    }
  });

  it("writes user-orders' log lines about each failed request with the trace id and that request's span id", async () => {
    const clients = spans.filter(
      (s) => s.service === "user-orders" && s.kind === client && s.name.endsWith("/BatchGetProducts"),
    );
    const logs = mesh.processes.get("user-orders")!.logs;
    await eventually(
      () => logs.filter((line) => line.msg === "call to products failed" && line.trace_id === traceId).length >= 3,
      5000,
      () => "three log lines about products",
    );
    const lines = logs.filter((line) => line.msg === "call to products failed" && line.trace_id === traceId);
    expect(lines.map((line) => line.span_id).sort()).toEqual(clients.map((s) => s.spanId).sort());
    // Lines outside any call carry no ids.
    expect(logs.find((line) => line.msg === "ready")).not.toHaveProperty("trace_id");
  });
});
