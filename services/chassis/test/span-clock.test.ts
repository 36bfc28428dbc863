// The spans of one call in one process on one clock: a client span lies
// within the server span it was made in, and an event recorded after the
// request ended comes after that request's end, down to the microsecond,
// while each call still starts from the wall clock.
import { context, ROOT_CONTEXT, SpanKind, trace, type HrTime } from "@opentelemetry/api";
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addSpanEvent, startTracing, type Tracing } from "@shopmesh/chassis";
import { endSpan, startSpan } from "../src/tracing/span-clock.js";

const exporter = new InMemorySpanExporter();
let tracing: Tracing;
beforeAll(async () => {
  tracing = await startTracing({ serviceName: "span-clock-test", exporter, env: {} });
});
afterAll(() => tracing?.shutdown());

/** Waits without yielding, as a handler's own work would, so that the clock moves by a fraction of a millisecond. */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

const ms = ([seconds, nanos]: HrTime) => seconds * 1000 + nanos / 1e6;
/** An epoch time in milliseconds is a double: exact to a fraction of a microsecond. */
const microsecond = 0.001;

describe("the span clock", () => {
  it("keeps a call's spans, events and ends in the order they happened, on the wall clock", async () => {
    // Many short calls, so that some of them cross a millisecond boundary between their spans'
    // starts: the SDK anchors every span on its own whole-millisecond Date.now().
    const calls = 300;
    const wallBefore: number[] = [];
    for (let i = 0; i < calls; i++) {
      wallBefore.push(Date.now());
      const server = startSpan(`call ${i}`, { kind: SpanKind.SERVER }, ROOT_CONTEXT);
      context.with(trace.setSpan(ROOT_CONTEXT, server), () => {
        busy(0.2);
        const request = startSpan(`request ${i}`, { kind: SpanKind.CLIENT });
        busy(0.3);
        endSpan(request);
        busy(0.05);
        addSpanEvent("degradation", { call: i });
      });
      endSpan(server);
    }
    await tracing.flush();
    const spans = exporter.getFinishedSpans();
    const named = new Map(spans.map((span) => [span.name, span]));
    for (let i = 0; i < calls; i++) {
      const server = named.get(`call ${i}`)!;
      const request = named.get(`request ${i}`)!;
      expect(request.parentSpanContext?.spanId).toBe(server.spanContext().spanId);
      const [event] = server.events;
      expect(event?.name).toBe("degradation");
      // 0.2 ms of work before the request, 0.3 ms in it, 0.05 ms before the event: each at least that far apart.
      expect(ms(request.startTime) - ms(server.startTime), `call ${i}`).toBeGreaterThanOrEqual(0.2 - microsecond);
      expect(ms(request.endTime) - ms(request.startTime), `call ${i}`).toBeGreaterThanOrEqual(0.3 - microsecond);
      expect(ms(event!.time) - ms(request.endTime), `call ${i}`).toBeGreaterThanOrEqual(0.05 - microsecond);
      expect(ms(server.endTime)).toBeGreaterThanOrEqual(ms(event!.time) - microsecond);
      // Each call is anchored on the wall clock when it starts.
      expect(ms(server.startTime)).toBeGreaterThanOrEqual(wallBefore[i]! - microsecond);
      expect(ms(server.startTime) - wallBefore[i]!).toBeLessThan(50);
    }
  });
});
