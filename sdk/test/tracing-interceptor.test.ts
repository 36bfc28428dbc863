// tracingInterceptor() against a real products process that exports its spans
// over OTLP/HTTP to a receiver in the test: an application's span, made
// active with OpenTelemetry's SDK registered in this process, becomes the
// parent of the server span products makes for the call, over both
// transport kinds; without an SDK registered nothing is sent.
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { context, propagation, trace } from "@opentelemetry/api";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { createClient, createTransport, tracingInterceptor, type TransportKind } from "@shopmesh/sdk";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { TestMesh } from "../../test/support/mesh.js";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "@shopmesh/cli";

const listProducts = "shopmesh.products.v1.ProductsService/ListProducts";
const server = "server";

let receiver: OtlpReceiver;
let mesh: TestMesh;
let provider: NodeTracerProvider | undefined;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  mesh = await TestMesh.start(["products"], {
    products: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: "100" },
  });
}, 60_000);
afterAll(async () => {
  await provider?.shutdown();
  trace.disable();
  context.disable();
  propagation.disable();
  await mesh?.stop();
  await receiver?.close();
});

type List = (headers?: Record<string, string>) => Promise<unknown>;

/** Lists products through a transport with the interceptor, as `call` says, and returns the server span products made for it. */
async function tracedCall(kind: TransportKind, call: (list: List) => Promise<unknown>): Promise<ReceivedSpan> {
  const transport = createTransport({
    target: mesh.address("products"),
    kind,
    tls: mesh.clientTls("products"),
    interceptors: [tracingInterceptor()],
  });
  try {
    const before = new Set(serverSpans().map((span) => span.spanId));
    const products = createClient(ProductsService, transport);
    await call((headers) => products.listProducts({ pageSize: 1 }, { timeoutMs: 5000, headers }));
    const deadline = performance.now() + 10_000;
    for (;;) {
      const fresh = serverSpans().filter((span) => !before.has(span.spanId));
      if (fresh.length > 0) {
        expect(fresh).toHaveLength(1);
        return fresh[0]!;
      }
      if (performance.now() > deadline) throw new Error("products exported no server span for the call");
      await sleep(50);
    }
  } finally {
    transport.close();
  }
}

const serverSpans = (): ReceivedSpan[] =>
  receiver.spans().filter((span) => span.name === listProducts && span.kind === server);

/** Runs `work` in an active span of the application's, with OpenTelemetry's SDK registered; returns that span's ids. */
async function inApplicationSpan(work: () => Promise<unknown>): Promise<{ traceId: string; spanId: string }> {
  if (provider === undefined) {
    provider = new NodeTracerProvider();
    // A context manager (AsyncLocalStorage) and the W3C propagator, as an application's setup registers them.
    provider.register();
  }
  return trace.getTracer("checkout-app").startActiveSpan("checkout", async (span) => {
    try {
      await work();
      return span.spanContext();
    } finally {
      span.end();
    }
  });
}

describe("tracingInterceptor", { timeout: 60_000 }, () => {
  it("sends nothing while the application has no OpenTelemetry SDK: the call starts a trace of its own", async () => {
    const span = await tracedCall("grpc-js", (list) => list());
    expect(span.parentSpanId).toBe("");
  });

  it.each(["grpc-js", "connect-node"] as const)(
    "continues the application's active span on the server, over %s",
    async (kind) => {
      let caller = { traceId: "", spanId: "" };
      const served = await tracedCall(kind, async (list) => {
        caller = await inApplicationSpan(() => list());
      });
      expect(caller.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect([served.traceId, served.parentSpanId]).toEqual([caller.traceId, caller.spanId]);
    },
  );

  it("keeps a traceparent the call sets itself", async () => {
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const served = await tracedCall("grpc-js", (list) => inApplicationSpan(() => list({ traceparent })));
    expect([served.traceId, served.parentSpanId]).toEqual(["0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"]);
  });
});
