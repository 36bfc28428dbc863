// The experiment's OTLP/HTTP receiver, fed by OpenTelemetry's own OTLP/HTTP
// exporter (the one the services use), and by hand for what it refuses.
import { gzipSync } from "node:zlib";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Tracer } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startOtlpReceiver, type OtlpReceiver } from "../src/tracing/otlp-receiver.js";

let receiver: OtlpReceiver;
let provider: BasicTracerProvider;
let tracer: Tracer;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": "checkout" }),
    spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${receiver.endpoint}/v1/traces` }))],
  });
  tracer = provider.getTracer("otlp-receiver-test");
});
afterAll(async () => {
  await provider.shutdown();
  await receiver.close();
});

describe("the OTLP receiver", () => {
  it("listens on loopback on a free port", () => {
    expect(receiver.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(receiver.endpoint).not.toMatch(/:0$/);
  });

  it("keeps what the OTLP/HTTP exporter sends, grouped by trace: kinds, parents, times, attributes, events, status", async () => {
    // Times of our own, in ms since the epoch with fractions the SDK keeps as nanoseconds: the SDK's
    // own would anchor each span on a whole-millisecond Date.now() of its own.
    const t0 = Date.now() + 0.25;
    const parent = tracer.startSpan("Checkout/Pay", { kind: SpanKind.SERVER, startTime: t0 });
    const traceId = parent.spanContext().traceId;
    const child = tracer.startSpan(
      "Bank/Charge",
      {
        kind: SpanKind.CLIENT,
        attributes: { "shopmesh.attempt": 2, "shopmesh.hedge": false, "peer.service": "bank" },
        startTime: t0 + 0.125,
      },
      trace.setSpan(ROOT_CONTEXT, parent),
    );
    child.addEvent("degradation", { "shopmesh.fallback": "NO_RECEIPT", "shopmesh.code": 4 }, t0 + 0.5);
    child.setStatus({ code: SpanStatusCode.ERROR, message: "deadline exceeded" });
    child.end(t0 + 0.75);
    parent.end(t0 + 1);
    // Another trace at the same time stays apart.
    const other = tracer.startSpan("Checkout/Refund");
    other.end();

    const spans = await receiver.waitForTrace(traceId, (s) => s.length === 2, 10_000);
    const server = spans.find((s) => s.kind === "server")!;
    const client = spans.find((s) => s.kind === "client")!;
    expect(server).toMatchObject({ service: "checkout", name: "Checkout/Pay", parentSpanId: "", traceId });
    expect(server.status.code).toBe("unset");
    expect(client).toMatchObject({
      name: "Bank/Charge",
      parentSpanId: server.spanId,
      attributes: { "shopmesh.attempt": 2, "shopmesh.hedge": false, "peer.service": "bank" },
      status: { code: "error", message: "deadline exceeded" },
    });
    expect(client.events).toHaveLength(1);
    expect(client.events[0]).toMatchObject({
      name: "degradation",
      attributes: { "shopmesh.fallback": "NO_RECEIPT", "shopmesh.code": 4 },
    });
    // Times in ms since the epoch, with sub-millisecond precision kept (to a few microseconds: an
    // epoch time in ms is a double).
    expect(server.startMs).toBeCloseTo(t0, 2);
    expect(client.startMs - t0).toBeCloseTo(0.125, 2);
    expect(client.events[0]!.timeMs - t0).toBeCloseTo(0.5, 2);
    expect(client.endMs - t0).toBeCloseTo(0.75, 2);
    expect(server.endMs - t0).toBeCloseTo(1, 2);
    expect(receiver.trace(traceId)).toHaveLength(2);
    const otherSpans = await receiver.waitForTrace(other.spanContext().traceId, (s) => s.length > 0, 10_000);
    expect(otherSpans.map((s) => s.name)).toEqual(["Checkout/Refund"]);
  });

  it("answers 200 with an empty ExportTraceServiceResponse, gzip-compressed bodies too", async () => {
    const body = {
      resourceSpans: [
        {
          resource: { attributes: [{ key: "service.name", value: { stringValue: "zipped" } }] },
          scopeSpans: [
            {
              spans: [
                {
                  traceId: "5b8efff798038103d269b633813fc60c",
                  spanId: "eee19b7ec3c1b174",
                  name: "Z/Zip",
                  kind: 2,
                  startTimeUnixNano: "1700000000000000000",
                  endTimeUnixNano: "1700000000012345678",
                },
              ],
            },
          ],
        },
      ],
    };
    const response = await fetch(`${receiver.endpoint}/v1/traces`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
      body: gzipSync(JSON.stringify(body)),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({});
    const [span] = receiver.trace("5b8efff798038103d269b633813fc60c");
    expect(span).toMatchObject({ service: "zipped", kind: "server", startMs: 1_700_000_000_000 });
    expect(span!.endMs - span!.startMs).toBeCloseTo(12.345, 3);
  });

  it("refuses protobuf with 415, bad JSON with 400, other paths with 404 and other methods with 405", async () => {
    const post = (path: string, type: string, body: string) =>
      fetch(`${receiver.endpoint}${path}`, { method: "POST", headers: { "content-type": type }, body });
    const before = receiver.received;
    const protobuf = await post("/v1/traces", "application/x-protobuf", "\x0a\x00");
    expect(protobuf.status).toBe(415);
    expect(((await protobuf.json()) as { message: string }).message).toContain("JSON");
    const bad = await post("/v1/traces", "application/json", "{not json");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain("not an OTLP JSON trace export");
    const noIds = await post("/v1/traces", "application/json", '{"resourceSpans":[{"scopeSpans":[{"spans":[{}]}]}]}');
    expect(noIds.status).toBe(400);
    expect((await post("/v1/metrics", "application/json", "{}")).status).toBe(404);
    expect((await fetch(`${receiver.endpoint}/v1/traces`)).status).toBe(405);
    expect(receiver.received).toBe(before);
  });

  it("gives up waiting for a trace after the time given, naming what came", async () => {
    const span = tracer.startSpan("Checkout/Lonely");
    span.end();
    const traceId = span.spanContext().traceId;
    await expect(receiver.waitForTrace(traceId, (s) => s.length >= 2, 300)).rejects.toThrow(
      /not complete after 300 ms; received \["checkout internal Checkout\/Lonely"\]/,
    );
  });
});
