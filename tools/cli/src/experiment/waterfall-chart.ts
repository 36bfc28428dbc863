import { statusName } from "@shopmesh/chassis";
import type { TopLevelSpec } from "vega-lite";
import type { ReceivedSpan } from "../tracing/otlp-receiver.js";

/** How a bar is coloured: by kind, unless the request failed or was cancelled. */
export type BarKind = "server" | "client" | "hedge" | "failed" | "cancelled";
const barKinds: readonly BarKind[] = ["server", "client", "hedge", "failed", "cancelled"];
const barColors = ["#1565c0", "#64b5f6", "#ef6c00", "#c62828", "#9e9e9e"];

/** gRPC's CANCELLED: a hedge that lost the race, or a request whose caller gave up. */
const cancelled = 1;

/** One row of a waterfall: a span, placed under its parent. */
export interface WaterfallRow {
  /** Position from the top, 0 first. */
  row: number;
  /** How many ancestors it has in the trace (0 for the root). */
  depth: number;
  label: string;
  /** Milliseconds from the trace's first span start. */
  startMs: number;
  endMs: number;
  kind: BarKind;
  /** gRPC status code the span recorded, if any. */
  code: number | undefined;
  /** What is written after the bar: its duration, and the status when not OK. */
  note: string;
  span: ReceivedSpan;
}

/** A span event placed on the waterfall. */
export interface WaterfallEvent {
  row: number;
  atMs: number;
  label: string;
}

/** A vertical line across the waterfall (a deadline), in ms since the epoch like the spans' times. */
export interface WaterfallMarker {
  atMs: number;
  label: string;
}

const methodOf = (span: ReceivedSpan) => String(span.attributes["rpc.method"] ?? span.name.split("/").at(-1));

function labelOf(span: ReceivedSpan): string {
  if (span.kind !== "client") return `${span.service} ${methodOf(span)}`;
  const peer = span.attributes["peer.service"] ?? span.attributes["rpc.service"];
  const attempt = span.attributes["shopmesh.attempt"];
  const which =
    span.attributes["shopmesh.hedge"] === true
      ? ", hedge"
      : typeof attempt === "number" && attempt > 1
        ? `, retry ${attempt - 1}`
        : "";
  return `→ ${peer} ${methodOf(span)}${which}`;
}

function kindOf(span: ReceivedSpan, code: number | undefined): BarKind {
  if (code === cancelled) return "cancelled";
  if (span.status.code === "error") return "failed";
  if (span.kind === "client") return span.attributes["shopmesh.hedge"] === true ? "hedge" : "client";
  return "server";
}

/** Describes an event from its attributes: a degradation names its dependency and fallback. */
function eventLabel(event: ReceivedSpan["events"][number]): string {
  const a = event.attributes;
  const parts = [a["peer.service"], a["shopmesh.fallback"]].filter((p) => p !== undefined);
  return parts.length > 0 ? `${event.name}: ${parts.join(" ")}` : event.name;
}

/**
 * The spans of one trace as a forest that {@link waterfallRows} can walk:
 * it lays out each span's children under it by recursion, so a span reached
 * again through a loop of parent links would be laid out forever. A span on
 * such a loop (its own parent, or one of a ring) is made a root; spans that
 * hang from the loop stay under their parents. Span ids are unique here,
 * which is what makes this enough.
 */
function untangled(spans: ReadonlyMap<string, ReceivedSpan>): ReceivedSpan[] {
  const parentOf = (spanId: string) => {
    const parent = spans.get(spanId)!.parentSpanId;
    return spans.has(parent) ? parent : undefined;
  };
  const onLoop = new Set<string>();
  const walked = new Set<string>();
  for (const start of spans.keys()) {
    // Up the parent links until a root, a span walked before, or this walk's own path again.
    const path: string[] = [];
    const onPath = new Map<string, number>();
    let at: string | undefined = start;
    while (at !== undefined && !walked.has(at) && !onPath.has(at)) {
      onPath.set(at, path.length);
      path.push(at);
      at = parentOf(at);
    }
    if (at !== undefined && onPath.has(at)) for (const looped of path.slice(onPath.get(at))) onLoop.add(looped);
    for (const spanId of path) walked.add(spanId);
  }
  return [...spans.values()].map((span) => (onLoop.has(span.spanId) ? { ...span, parentSpanId: "" } : span));
}

/**
 * Lays a trace out as rows: each span under its parent, children in the
 * order they started, times relative to the first span's start. A span whose
 * parent is not in the trace (the caller's own span) is a root. Spans come
 * from whoever sends them, so a span id given twice is drawn once (the
 * first), a span without an id not at all, and a loop of parent links from
 * a root.
 */
export function waterfallRows(received: readonly ReceivedSpan[]): { rows: WaterfallRow[]; events: WaterfallEvent[] } {
  const byId = new Map<string, ReceivedSpan>();
  for (const span of received) if (span.spanId !== "" && !byId.has(span.spanId)) byId.set(span.spanId, span);
  const spans = untangled(byId);
  if (spans.length === 0) return { rows: [], events: [] };
  const t0 = Math.min(...spans.map((s) => s.startMs));
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string, ReceivedSpan[]>();
  for (const span of spans) {
    const parent = ids.has(span.parentSpanId) ? span.parentSpanId : "";
    const siblings = children.get(parent);
    if (siblings) siblings.push(span);
    else children.set(parent, [span]);
  }
  const rows: WaterfallRow[] = [];
  const events: WaterfallEvent[] = [];
  const visit = (parent: string, depth: number) => {
    const ordered = (children.get(parent) ?? []).sort((a, b) => a.startMs - b.startMs || b.endMs - a.endMs);
    for (const span of ordered) {
      const row = rows.length;
      const raw = span.attributes["rpc.grpc.status_code"];
      const code = typeof raw === "number" ? raw : undefined;
      const durationMs = span.endMs - span.startMs;
      rows.push({
        row,
        depth,
        label: labelOf(span),
        startMs: span.startMs - t0,
        endMs: span.endMs - t0,
        kind: kindOf(span, code),
        code,
        note: `${durationMs.toFixed(1)} ms${code ? ` ${statusName(code)}` : ""}`,
        span,
      });
      for (const event of span.events) events.push({ row, atMs: event.timeMs - t0, label: eventLabel(event) });
      visit(span.spanId, depth + 1);
    }
  };
  visit("", 0);
  return { rows, events };
}

const rowHeight = 28;

/**
 * A trace as a waterfall chart: one row per span (service and method,
 * indented under its parent), bars on a shared axis of milliseconds from
 * the trace's start, coloured by kind or failure, each followed by its
 * duration and status; span events as diamonds with their names; markers
 * (a deadline) as dashed lines.
 */
export function waterfallChart(
  title: { text: string; subtitle?: string },
  spans: readonly ReceivedSpan[],
  markers: readonly WaterfallMarker[] = [],
): TopLevelSpec {
  const { rows, events } = waterfallRows(spans);
  const t0 = spans.length === 0 ? 0 : Math.min(...spans.map((s) => s.startMs));
  const bars = rows.map((r) => ({
    row: String(r.row),
    depth: r.depth,
    label: r.label,
    startMs: r.startMs,
    endMs: r.endMs,
    kind: r.kind,
    note: r.note,
  }));
  const points = events.map((e) => ({ row: String(e.row), atMs: e.atMs, label: e.label }));
  // Markers are named in a row of their own above the spans, clear of the events' names.
  const markerRow = "markers";
  const lines = markers.map((m) => ({ row: markerRow, atMs: m.atMs - t0, label: m.label }));
  const maxMs = Math.max(1, ...rows.map((r) => r.endMs), ...lines.map((l) => l.atMs));
  const order = [...(lines.length > 0 ? [markerRow] : []), ...bars.map((b) => b.row)];
  const height = Math.max(1, order.length) * rowHeight;
  // Rows by their position, top to bottom; their names are drawn by the label panel.
  const y = { field: "row", type: "ordinal", sort: order, scale: { domain: order }, axis: null } as const;
  const x = {
    field: "startMs",
    type: "quantitative",
    title: "ms since the trace began",
    scale: { domain: [0, maxMs], nice: false },
  } as const;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    background: "white",
    title,
    resolve: { scale: { y: "shared" } },
    spacing: 4,
    hconcat: [
      {
        width: 240,
        height,
        data: { values: bars },
        mark: { type: "text", align: "left", baseline: "middle", fontSize: 11 },
        encoding: {
          y,
          // Indented by depth: a span sits under its parent.
          x: { field: "depth", type: "quantitative", scale: { domain: [0, 10], range: [0, 240] }, axis: null },
          text: { field: "label" },
        },
        view: { stroke: null },
      },
      {
        width: 520,
        height,
        layer: [
          {
            data: { values: bars },
            mark: { type: "bar", height: 12, cornerRadius: 2 },
            encoding: {
              y,
              x,
              x2: { field: "endMs" },
              color: {
                field: "kind",
                type: "nominal",
                title: "span",
                scale: { domain: [...barKinds], range: barColors },
                legend: { orient: "bottom", direction: "horizontal" },
              },
            },
          },
          {
            data: { values: bars },
            mark: { type: "text", align: "left", baseline: "middle", dx: 4, fontSize: 10, color: "#333" },
            encoding: { y, x: { field: "endMs", type: "quantitative" }, text: { field: "note" } },
          },
          ...(lines.length === 0
            ? []
            : [
                {
                  data: { values: lines },
                  mark: { type: "rule" as const, strokeDash: [4, 3], color: "#c62828" },
                  encoding: { x: { field: "atMs", type: "quantitative" as const } },
                },
                {
                  data: { values: lines },
                  mark: {
                    type: "text" as const,
                    align: "right" as const,
                    baseline: "middle" as const,
                    dx: -4,
                    fontSize: 10,
                    color: "#c62828",
                  },
                  encoding: { x: { field: "atMs", type: "quantitative" as const }, y, text: { field: "label" } },
                },
              ]),
          ...(points.length === 0
            ? []
            : [
                {
                  data: { values: points },
                  mark: { type: "point" as const, shape: "diamond", filled: true, size: 80, color: "#212121" },
                  encoding: { y, x: { field: "atMs", type: "quantitative" as const } },
                },
                {
                  data: { values: points },
                  mark: {
                    type: "text" as const,
                    align: "right" as const,
                    baseline: "bottom" as const,
                    dy: -7,
                    fontSize: 10,
                    color: "#212121",
                  },
                  encoding: { y, x: { field: "atMs", type: "quantitative" as const }, text: { field: "label" } },
                },
              ]),
        ],
      },
    ],
  } as TopLevelSpec;
}
