// Tracing through real gRPC between two servers in this process, with an
// in-memory exporter: the caller's traceparent is continued, every call has
// a server span, every downstream request a client span with its attempt,
// the trace crosses to the dependency, and log lines written in a handler
// carry the ids of its span, as does the line the server logs about the call.
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SpanKind } from "@opentelemetry/api";
import { createConnectTransport } from "@connectrpc/connect-web";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace-node";
import { createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import {
  addSpanEvent,
  createDependencyTransport,
  createLogger,
  hosted,
  serverTracingInterceptor,
  startServer,
  startTracing,
  withAttempt,
  type RunningServer,
  type Tracing,
} from "@shopmesh/chassis";
import { EchoService } from "../../../gen/shopmesh/echo/v1/echo_pb.js";
import { startEchoServer, type LoopbackEchoServer } from "./support/loopback-server.js";

const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
const callerSpanId = "00f067aa0ba902b7";
const traceparent = `00-${traceId}-${callerSpanId}-01`;

const exporter = new InMemorySpanExporter();
const lines: Record<string, unknown>[] = [];
let tracing: Tracing;
let downstream: LoopbackEchoServer;
let front: RunningServer;
let dependency: GrpcTransport;
let client: GrpcTransport;

beforeAll(async () => {
  tracing = await startTracing({ serviceName: "tracing-test", exporter, env: {} });
  downstream = await startEchoServer({ interceptors: [serverTracingInterceptor] });
  // Debug, for the line the server writes about each call.
  const logger = createLogger(
    "front",
    "debug",
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString("utf8").split("\n").filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    }),
  );
  dependency = createDependencyTransport(downstream.server.address, logger, { service: "echo", tls: { mode: "off" } });
  const echo = createClient(EchoService, dependency);
  // A front service whose handler makes two attempts at its dependency, as a retry would.
  front = await startServer({
    config: { host: "127.0.0.1", port: 0, shutdownDelayMs: 0, shutdownGraceMs: 1000, maxRequestBytes: 1 << 20 },
    http: { port: 0, corsOrigins: [] },
    logger,
    interceptors: [serverTracingInterceptor],
    services: [
      hosted(EchoService, {
        async echo(request) {
          logger.info("handling");
          await withAttempt({ attempt: 1, hedge: false }, () => echo.echo({ message: `${request.message} 1` }));
          await withAttempt({ attempt: 2, hedge: false }, () => echo.echo({ message: `${request.message} 2` }));
          addSpanEvent("degradation", { "peer.service": "echo" });
          return { message: request.message };
        },
        async *echoStream() {},
      }),
    ],
  });
  client = createTransport({ target: front.address });
});
afterAll(async () => {
  client?.close();
  dependency?.close();
  await front?.stop();
  await downstream?.server.stop();
  await tracing?.shutdown();
});

const byName = (spans: ReadableSpan[], name: string) => spans.filter((span) => span.name === name);
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId;

describe("tracing across two servers", () => {
  it("continues the caller's trace through every span and into the dependency", async () => {
    await createClient(EchoService, client).echo({ message: "traced" }, { headers: { traceparent } });
    await tracing.flush();
    const spans = exporter.getFinishedSpans();
    expect(spans.every((span) => span.spanContext().traceId === traceId)).toBe(true);

    const servers = byName(spans, "shopmesh.echo.v1.EchoService/Echo").filter((s) => s.kind === SpanKind.SERVER);
    const clients = byName(spans, "shopmesh.echo.v1.EchoService/Echo").filter((s) => s.kind === SpanKind.CLIENT);
    // One server span at the front, one per request at the dependency.
    expect(servers).toHaveLength(3);
    const frontSpan = servers.find((span) => parentOf(span) === callerSpanId)!;
    expect(frontSpan).toBeDefined();
    expect(frontSpan.attributes).toMatchObject({
      "rpc.system": "grpc",
      "rpc.service": "shopmesh.echo.v1.EchoService",
      "rpc.method": "Echo",
      "rpc.grpc.status_code": 0,
    });
    expect(frontSpan.events.map((event) => event.name)).toEqual(["degradation"]);

    // A client span per attempt, children of the front's server span, each the parent of a dependency's server span.
    expect(clients.map((span) => span.attributes["shopmesh.attempt"]).sort()).toEqual([1, 2]);
    for (const span of clients) {
      expect(parentOf(span)).toBe(frontSpan.spanContext().spanId);
      expect(span.attributes["peer.service"]).toBe("echo");
      expect(servers.filter((server) => parentOf(server) === span.spanContext().spanId)).toHaveLength(1);
    }
    const seen = downstream.observations.filter((o) => o.message.startsWith("traced "));
    expect(seen.map((o) => o.header.traceparent?.split("-")[1])).toEqual([traceId, traceId]);

    // The line the handler logged names the trace and its own span.
    const handling = lines.find((line) => line.msg === "handling");
    expect(handling).toMatchObject({ trace_id: traceId, span_id: frontSpan.spanContext().spanId });
    // So does the line the server writes about the call once it has ended, after its span.
    const call = lines.filter((line) => line.msg === "call" && line.method === "/shopmesh.echo.v1.EchoService/Echo");
    expect(call).toHaveLength(1);
    expect(call[0]).toMatchObject({ code: "OK", trace_id: traceId, span_id: frontSpan.spanContext().spanId });
  });

  it("writes the line about a call on the HTTP port with the ids of its span as well", async () => {
    const httpTraceId = "5bf92f3577b34da6a3ce929d0e0e4737";
    const overHttp = createClient(
      EchoService,
      createConnectTransport({ baseUrl: `http://127.0.0.1:${front.httpPort}` }),
    );
    await overHttp.echo({ message: "over http" }, { headers: { traceparent: `00-${httpTraceId}-${callerSpanId}-01` } });
    await tracing.flush();
    const frontSpan = exporter
      .getFinishedSpans()
      .find(
        (span) =>
          span.kind === SpanKind.SERVER &&
          parentOf(span) === callerSpanId &&
          span.spanContext().traceId === httpTraceId,
      )!;
    expect(frontSpan).toBeDefined();
    const call = lines.filter((line) => line.msg === "call" && line.trace_id === httpTraceId);
    expect(call).toHaveLength(1);
    expect(call[0]).toMatchObject({
      method: "/shopmesh.echo.v1.EchoService/Echo",
      code: "OK",
      span_id: frontSpan.spanContext().spanId,
    });
  });

  it("starts a new trace for a call that brings none, and marks a failed downstream request", async () => {
    exporter.reset();
    const failed = createClient(EchoService, dependency).echo(
      { message: "alone" },
      { headers: { "x-fail-code": "14" } },
    );
    await expect(failed).rejects.toThrow();
    await tracing.flush();
    const spans = exporter.getFinishedSpans();
    const clientSpan = spans.find((span) => span.kind === SpanKind.CLIENT)!;
    expect(clientSpan.attributes["rpc.grpc.status_code"]).toBe(14);
    expect(clientSpan.status.code).toBe(2);
    const serverSpan = spans.find((span) => span.kind === SpanKind.SERVER)!;
    expect(serverSpan.spanContext().traceId).toBe(clientSpan.spanContext().traceId);
    expect(serverSpan.spanContext().traceId).not.toBe(traceId);
  });
});
