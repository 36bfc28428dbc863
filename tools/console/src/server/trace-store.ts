import type { IncomingMessage, ServerResponse } from "node:http";
import { readOtlpBody, spansOf, waterfallRows, type ReceivedSpan } from "@shopmesh/cli";
import type { TraceView } from "../summary-types.js";

type ExportRequest = Parameters<typeof spansOf>[0];

/** The span a view's trace is named by: user-orders answering GetUserOrders. */
const isViewSpan = (span: ReceivedSpan) => span.kind === "server" && span.name.endsWith("/GetUserOrders");

/**
 * The spans the services export to the console, kept by trace for the most
 * recent `maxTraces` traces only: a console left open under load must not
 * grow without bound.
 */
export class TraceStore {
  /** By trace id, then span id. */
  readonly #traces = new Map<string, Map<string, ReceivedSpan>>();
  #latestView: string | null = null;

  constructor(
    readonly maxTraces = 300,
    readonly maxSpansPerTrace = 200,
  ) {}

  /**
   * Keeps the first span of each id in its trace: a span sent again (an
   * exporter's retry, or a client's mistake) adds nothing to draw. A span
   * without an id is dropped, since "" is how a root names its parent.
   */
  add(spans: readonly ReceivedSpan[]): void {
    for (const span of spans) {
      if (span.spanId === "") continue;
      let trace = this.#traces.get(span.traceId);
      if (trace === undefined) {
        trace = new Map();
        this.#traces.set(span.traceId, trace);
        while (this.#traces.size > this.maxTraces) this.#traces.delete(this.#traces.keys().next().value!);
      }
      if (trace.size < this.maxSpansPerTrace && !trace.has(span.spanId)) trace.set(span.spanId, span);
      if (isViewSpan(span)) this.#latestView = span.traceId;
    }
  }

  /** The newest trace whose view span has arrived, while it is still kept. */
  get latestViewTraceId(): string | null {
    return this.#latestView !== null && this.#traces.has(this.#latestView) ? this.#latestView : null;
  }

  /** A trace as waterfall rows; undefined when none of its spans is kept. */
  view(traceId: string): TraceView | undefined {
    const spans = this.#traces.get(traceId);
    if (spans === undefined) return undefined;
    const { rows, events } = waterfallRows([...spans.values()]);
    return {
      traceId,
      bars: rows.map(({ depth, label, startMs, endMs, kind, note }) => ({ depth, label, startMs, endMs, kind, note })),
      events,
    };
  }

  clear(): void {
    this.#traces.clear();
    this.#latestView = null;
  }
}

/** Largest export body taken; a batch of the SDK's default 512 spans is well under it. */
const maxBodyBytes = 8 * 1024 * 1024;

/**
 * POST /v1/traces: OTLP/HTTP in its JSON encoding (what the services'
 * exporter sends with OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json), into
 * the store. Spans are taken only while `accepting()`: with nobody watching,
 * they are answered and dropped.
 */
export async function receiveOtlp(
  req: IncomingMessage,
  res: ServerResponse,
  store: TraceStore,
  accepting: () => boolean,
): Promise<void> {
  const refuse = (status: number, message: string): void => {
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ code: 3, message }));
  };
  if (req.method !== "POST") return refuse(405, "spans are sent with POST");
  if (!(req.headers["content-type"] ?? "").startsWith("application/json"))
    return refuse(415, "this receiver takes OTLP's JSON encoding (application/json)");
  try {
    const spans = spansOf(JSON.parse(await readOtlpBody(req, maxBodyBytes)) as ExportRequest);
    if (accepting()) store.add(spans);
    res.writeHead(200, { "content-type": "application/json" }).end("{}");
  } catch (error) {
    refuse(400, `not an OTLP JSON trace export: ${(error as Error).message}`);
  }
}
