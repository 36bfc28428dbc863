// Events carry the trace of the write that produced them, through real
// service processes exporting over OTLP/HTTP to a receiver in the test: a
// CreateOrder sent with a traceparent of ours commits an event whose trace
// context reaches user-orders, which applies it to its projection in a span
// of its own trace, linked to orders' CreateOrder span. Both event paths:
// each service's StreamEvents, and NATS JetStream fed by the outbox relays
// (skipped without nats-server).
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminToken, signUpCustomer, TestMesh, type ServiceName } from "../support/mesh.js";
import { natsForTests, natsServer, uniquePrefix, type TestNats } from "../support/nats-server.js";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "@shopmesh/cli";

const services: ServiceName[] = ["users", "products", "orders", "user-orders"];
const internal = "internal";
const server = "server";
const consumer = "consumer";

/** Polls until `check` holds, for at most `timeoutMs`. */
async function eventually(check: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await sleep(50);
  }
}

describe("events linked to the writes that produced them, through StreamEvents", { timeout: 90_000 }, () =>
  eventTraceTests("grpc"),
);
describe.skipIf(natsServer().missing)(
  "events linked to the writes that produced them, through NATS JetStream",
  { timeout: 90_000 },
  () => eventTraceTests("nats"),
);

function eventTraceTests(source: "grpc" | "nats"): void {
  const traceId = randomBytes(16).toString("hex");
  const callerSpanId = randomBytes(8).toString("hex");
  let receiver: OtlpReceiver;
  let nats: TestNats | undefined;
  let mesh: TestMesh;
  let productId: string;

  const spansOf = (service: ServiceName) => receiver.spans().filter((span) => span.service === service);
  const applySpans = (name: string) => spansOf("user-orders").filter((span) => span.name === name);
  const linkedTo = (spans: ReceivedSpan[], target: ReceivedSpan) =>
    spans.filter((span) => span.links.some((l) => l.traceId === target.traceId && l.spanId === target.spanId));
  const serverSpan = (service: ServiceName, method: string, where: (span: ReceivedSpan) => boolean = () => true) =>
    spansOf(service).filter((span) => span.kind === server && span.name.endsWith(`/${method}`) && where(span));

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    const tracing = {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      // Exported within a moment of ending rather than every 5 s.
      OTEL_BSP_SCHEDULE_DELAY: "100",
    };
    let producer: Record<string, string> = tracing;
    let reader: Record<string, string> = tracing;
    if (source === "nats") {
      nats = await natsForTests();
      const settings = { NATS_URL: nats.url, EVENTS_NATS_PREFIX: uniquePrefix("event-traces") };
      producer = { ...tracing, ...settings, EVENTS_RELAY: "nats" };
      reader = { ...tracing, ...settings, EVENTS_SOURCE: "nats" };
    }
    mesh = await TestMesh.start(services, {
      users: producer,
      products: producer,
      orders: producer,
      "user-orders": { ...reader, EVENTS_RECONNECT_MAX: "300ms" },
    });
    const admin = mesh.client("products", await adminToken(mesh));
    productId = (await admin.createProduct({ name: "Tea", price: { currencyCode: "EUR", minorUnits: 500n } })).product!
      .id;
    const customer = await signUpCustomer(mesh, `traced-${source}`);
    await mesh
      .client("orders", customer.token)
      .createOrder(
        { requestId: `traced-${source}`, items: [{ productId, quantity: 2 }] },
        { headers: { traceparent: `00-${traceId}-${callerSpanId}-01` } },
      );
    await eventually(
      () =>
        applySpans("apply OrderPlaced").some((span) => span.links.some((l) => l.traceId === traceId)) &&
        // The event can reach user-orders before orders has exported the span that wrote it.
        serverSpan("orders", "CreateOrder", (span) => span.traceId === traceId).length > 0 &&
        applySpans("apply ProductCreated").length > 0 &&
        applySpans("apply UserRegistered").length > 0,
      30_000,
      () =>
        `user-orders' apply spans; have ${JSON.stringify(spansOf("user-orders").map((s) => `${s.name} ${JSON.stringify(s.links)}`))}`,
    );
  });
  afterAll(async () => {
    await mesh?.stop();
    await nats?.stop();
    await receiver?.close();
  });

  it("applies the order in a consumer span linked to orders' CreateOrder span, in a trace of its own", async () => {
    const [createOrder, ...others] = serverSpan("orders", "CreateOrder", (span) => span.traceId === traceId);
    expect(others).toHaveLength(0);
    expect(createOrder!.parentSpanId).toBe(callerSpanId);
    // Exported a moment after the apply span, perhaps.
    await eventually(
      () => linkedTo(applySpans("apply OrderPlaced"), createOrder!).length === 1,
      5000,
      () => "the apply span linked to CreateOrder",
    );
    const [apply] = linkedTo(applySpans("apply OrderPlaced"), createOrder!);
    expect(apply!.kind).toBe(consumer);
    expect(apply!.traceId).not.toBe(traceId);
    expect(apply!.links).toHaveLength(1);
    expect(apply!.attributes).toMatchObject({
      "shopmesh.event.stream": "orders",
      "shopmesh.event.kind": "OrderPlaced",
    });
    expect(apply!.attributes["shopmesh.event.sequence"]).toBeGreaterThan(0);

    // Its parent is the span of the batch it was applied in.
    const batch = spansOf("user-orders").find((span) => span.spanId === apply!.parentSpanId);
    expect(batch).toMatchObject({ name: "apply orders events", kind: internal, traceId: apply!.traceId, links: [] });
    expect(batch!.attributes["shopmesh.events.count"]).toBeGreaterThanOrEqual(1);
  });

  it("links each stream's events to the write that produced them: a product created, customers signed up", async () => {
    // Each sign-up that succeeded (the admin's and the customer's) registered a user. The spans are
    // exported in batches, so the writes' own may still be on their way.
    const succeeded = (span: ReceivedSpan) => span.attributes["rpc.grpc.status_code"] === 0;
    await eventually(
      () => serverSpan("products", "CreateProduct").length > 0 && serverSpan("users", "SignUp", succeeded).length >= 2,
      5000,
      () => "the CreateProduct span and both SignUp spans",
    );
    const [createProduct, ...more] = serverSpan("products", "CreateProduct");
    expect(more).toHaveLength(0);
    const signUps = serverSpan("users", "SignUp", succeeded);
    expect(signUps).toHaveLength(2);
    await eventually(
      () =>
        linkedTo(applySpans("apply ProductCreated"), createProduct!).length === 1 &&
        signUps.every((signUp) => linkedTo(applySpans("apply UserRegistered"), signUp).length === 1),
      5000,
      () => "an apply span linked to CreateProduct and one to each SignUp",
    );
    const [apply] = linkedTo(applySpans("apply ProductCreated"), createProduct!);
    expect(apply!.kind).toBe(consumer);
    expect(apply!.traceId).not.toBe(createProduct!.traceId);
    // Events written outside any traced call (none here) would carry no link; these all do.
    expect(applySpans("apply UserRegistered").every((span) => span.links.length === 1)).toBe(true);
  });
}
