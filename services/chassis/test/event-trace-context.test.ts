// The trace context of the write that produced an event, with tracing on and
// an in-memory exporter: stored beside the event in the outbox (the columns
// the services' migration adds), read back into the envelope, carried in a
// relayed message's NATS headers, and turned into a link on the span of the
// work the event causes.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { headers } from "nats";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { context, propagation, ROOT_CONTEXT, SpanKind, trace } from "@opentelemetry/api";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-node";
import { EventLog, inEventSpan, linksTo, startTracing, type Tracing } from "@shopmesh/chassis";
import { setTraceContextHeaders, traceContextFromHeaders } from "@shopmesh/chassis/jetstream";
import { ProductEventSchema } from "@shopmesh/sdk/products/v1";

const outboxSql = ["0001_outbox.sql", "0002_outbox_trace_context.sql"]
  .map((file) => readFileSync(fileURLToPath(new URL(`../../products/drizzle/${file}`, import.meta.url)), "utf8"))
  .join("\n");

const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
const callerSpanId = "00f067aa0ba902b7";

const exporter = new InMemorySpanExporter();
let tracing: Tracing;
const databases: Database.Database[] = [];

beforeAll(async () => {
  tracing = await startTracing({ serviceName: "event-trace-test", exporter, env: {} });
});
afterAll(async () => {
  await tracing?.shutdown();
});
afterEach(() => {
  for (const db of databases.splice(0)) db.close();
  exporter.reset();
});

function openLog() {
  const sqlite = new Database(":memory:");
  databases.push(sqlite);
  sqlite.exec(outboxSql);
  return { sqlite, log: new EventLog(sqlite, ProductEventSchema) };
}

const created = (name: string) => ({
  kind: { case: "productCreated" as const, value: { product: { id: `id-${name}`, name } } },
});

/** Runs `work` inside a span of a handler continuing the caller's trace (with trace state, when given). */
function inHandlerSpan<T>(work: () => T, tracestate?: string): T {
  const headers: Record<string, string> = { traceparent: `00-${traceId}-${callerSpanId}-01` };
  if (tracestate) headers.tracestate = tracestate;
  const parent = propagation.extract(ROOT_CONTEXT, headers);
  return trace.getTracer("test").startActiveSpan("handler", {}, parent, (span) => {
    try {
      return work();
    } finally {
      span.end();
    }
  });
}

describe("an event's producer trace context", () => {
  it("is stored with an event appended inside a span, and read back into the envelope", () => {
    const { sqlite, log } = openLog();
    let handlerSpanId = "";
    inHandlerSpan(() => {
      handlerSpanId = trace.getActiveSpan()!.spanContext().spanId;
      log.append(created("traced"));
    }, "vendor=opaque");
    log.append(created("untraced"));

    const rows = sqlite.prepare("SELECT traceparent, tracestate FROM outbox ORDER BY sequence").all();
    expect(rows).toEqual([
      { traceparent: `00-${traceId}-${handlerSpanId}-01`, tracestate: "vendor=opaque" },
      { traceparent: null, tracestate: null },
    ]);
    const [traced, untraced] = log.outbox.after(0, 10).map((entry) => log.decode(entry));
    expect(traced!.traceContext).toMatchObject({
      traceparent: `00-${traceId}-${handlerSpanId}-01`,
      tracestate: "vendor=opaque",
    });
    expect(untraced!.traceContext).toBeUndefined();
  });

  it("comes from the outbox only: a trace context the caller put in the envelope is not stored", () => {
    const { sqlite, log } = openLog();
    log.append({
      ...created("forged"),
      traceContext: { traceparent: `00-${"1".repeat(32)}-${"2".repeat(16)}-01`, tracestate: "" },
    });
    const [entry] = log.outbox.after(0, 1);
    expect(entry!.traceparent).toBeNull();
    expect(log.decode(entry!).traceContext).toBeUndefined();
    const payload = sqlite.prepare<[], { payload: Buffer }>("SELECT payload FROM outbox").get()!.payload;
    expect(payload.toString("latin1")).not.toContain("1111");
  });

  it("reaches a reader of the stream in the envelope", async () => {
    const { log } = openLog();
    inHandlerSpan(() => log.append(created("streamed")));
    const abort = new AbortController();
    const stream = log.follow(0n, abort.signal);
    try {
      await stream.next(); // the heartbeat with the head
      const { value } = await stream.next();
      expect(value?.event?.traceContext?.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    } finally {
      abort.abort();
      await stream.return(undefined);
    }
  });

  it("travels in a relayed message's W3C headers and back", () => {
    const header = headers();
    setTraceContextHeaders(header, { traceparent: `00-${traceId}-${callerSpanId}-01`, tracestate: "a=1" });
    expect([header.get("traceparent"), header.get("tracestate")]).toEqual([`00-${traceId}-${callerSpanId}-01`, "a=1"]);
    expect(traceContextFromHeaders(header)).toEqual({
      traceparent: `00-${traceId}-${callerSpanId}-01`,
      tracestate: "a=1",
    });
    const none = headers();
    setTraceContextHeaders(none, undefined);
    expect(none.has("traceparent")).toBe(false);
    expect(traceContextFromHeaders(none)).toBeUndefined();
    expect(traceContextFromHeaders(undefined)).toBeUndefined();
  });
});

describe("the span of the work an event causes", () => {
  it("is a consumer span linked to the producing span, in a trace of its own, child of the span active there", async () => {
    const producer = { traceparent: `00-${traceId}-${callerSpanId}-01`, tracestate: "" };
    const batchResult = inEventSpan("apply batch", { "shopmesh.events.count": 1 }, undefined, () =>
      inEventSpan("apply ProductCreated", { "shopmesh.event.sequence": 7 }, producer, () => {
        expect(trace.getActiveSpan()?.spanContext().traceId).not.toBe(traceId);
        return "applied";
      }),
    );
    expect(batchResult).toBe("applied");
    await tracing.flush();
    const spans = exporter.getFinishedSpans();
    const batch = spans.find((span) => span.name === "apply batch")!;
    const apply = spans.find((span) => span.name === "apply ProductCreated")!;
    expect(batch.kind).toBe(SpanKind.INTERNAL);
    expect(batch.links).toEqual([]);
    expect(apply.kind).toBe(SpanKind.CONSUMER);
    expect(apply.parentSpanContext?.spanId).toBe(batch.spanContext().spanId);
    expect(apply.spanContext().traceId).toBe(batch.spanContext().traceId);
    expect(apply.links.map((link) => [link.context.traceId, link.context.spanId])).toEqual([[traceId, callerSpanId]]);
    expect(apply.attributes["shopmesh.event.sequence"]).toBe(7);
    // Nothing leaks: outside, no span is active.
    expect(trace.getSpan(context.active())).toBeUndefined();
  });

  it("marks the span failed when the work throws, and throws on", async () => {
    expect(() =>
      inEventSpan("apply broken", {}, undefined, () => {
        throw new Error("constraint failed");
      }),
    ).toThrow("constraint failed");
    await tracing.flush();
    const span = exporter.getFinishedSpans().find((s) => s.name === "apply broken")!;
    expect(span.status).toMatchObject({ code: 2, message: "constraint failed" });
  });

  it("has no link for a missing or malformed trace context", () => {
    expect(linksTo(undefined)).toEqual([]);
    expect(linksTo({ traceparent: "" })).toEqual([]);
    expect(linksTo({ traceparent: "00-not-a-trace-01" })).toEqual([]);
    expect(linksTo({ traceparent: `00-${"0".repeat(32)}-${callerSpanId}-01` })).toEqual([]);
    expect(linksTo({ traceparent: `00-${traceId}-${callerSpanId}-01`, tracestate: "a=1" })).toHaveLength(1);
  });
});
