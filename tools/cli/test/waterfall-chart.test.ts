// The trace waterfall: rows laid out from a small set of spans as the
// receiver keeps them, and the SVG drawn from them.
import { describe, expect, it } from "vitest";
import { renderSvg } from "../src/experiment/charts.js";
import { waterfallChart, waterfallRows } from "../src/experiment/waterfall-chart.js";
import type { ReceivedSpan } from "../src/tracing/otlp-receiver.js";
import { spans, t0 } from "./trace-fixture.js";

describe("waterfallRows", () => {
  const { rows, events } = waterfallRows(spans);

  it("draws a span id given twice once, and a loop of parent links from a root, without recursing forever", () => {
    const [root, client] = spans as [ReceivedSpan, ReceivedSpan];
    const looped = [
      root,
      { ...root, name: "sent again" },
      { ...client, spanId: "a", parentSpanId: "a" },
      { ...client, spanId: "b", parentSpanId: "c" },
      { ...client, spanId: "c", parentSpanId: "b" },
      { ...client, spanId: "", parentSpanId: "" },
    ];
    const laid = waterfallRows(looped).rows;
    expect(laid.map((row) => row.span.spanId).sort()).toEqual([root.spanId, "a", "b", "c"].sort());
    expect(laid.find((row) => row.span.spanId === root.spanId)!.span.name).toBe(root.name);
  });

  it("puts every span under its parent, children in the order they started, from the trace's start", () => {
    expect(rows.map((r) => [r.depth, r.label])).toEqual([
      [0, "user-orders GetUserOrders"],
      [1, "→ users GetUser"],
      [2, "users GetUser"],
      [1, "→ orders ListOrders, retry 1"],
      [1, "→ products BatchGetProducts"],
      [2, "products BatchGetProducts"],
      [1, "→ products BatchGetProducts, hedge"],
    ]);
    expect(rows.map((r) => r.row)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(rows[0]).toMatchObject({ startMs: 0, endMs: 307 });
    expect(rows[5]).toMatchObject({ startMs: 6, endMs: 306.5 });
  });

  it("colours by kind, failures red and cancelled requests apart, and notes duration and status", () => {
    expect(rows.map((r) => r.kind)).toEqual(["server", "client", "server", "client", "failed", "failed", "cancelled"]);
    expect(rows[0]!.note).toBe("307.0 ms");
    expect(rows[4]!.note).toBe("300.0 ms DEADLINE_EXCEEDED");
    expect(rows[6]!.note).toBe("250.0 ms CANCELLED");
  });

  it("places span events on their span's row, named with the dependency and the fallback", () => {
    expect(events).toEqual([{ row: 0, atMs: 306, label: "degradation: products NO_PRODUCT_DETAILS" }]);
  });

  it("draws nothing for no spans", () => {
    expect(waterfallRows([])).toEqual({ rows: [], events: [] });
  });
});

describe("waterfallChart", () => {
  it("renders an SVG with a row per span, the statuses, the event and the deadline marker", async () => {
    const svg = await renderSvg(
      waterfallChart({ text: "products hung" }, spans, [{ atMs: t0 + 305, label: "products deadline (300 ms)" }]),
    );
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toContain("products hung");
    for (const text of [
      "user-orders GetUserOrders",
      "→ orders ListOrders, retry 1",
      "products BatchGetProducts",
      "300.0 ms DEADLINE_EXCEEDED",
      "250.0 ms CANCELLED",
      "degradation: products NO_PRODUCT_DETAILS",
      "products deadline (300 ms)",
      "ms since the trace began",
    ]) {
      expect(svg).toContain(text.replace(">", "&gt;"));
    }
    // Seven bars, coloured by kind: the failed ones red, the cancelled hedge grey.
    expect(svg.match(/role-mark/g)?.length).toBeGreaterThan(0);
    expect(svg.match(/fill="#c62828"/g)?.length).toBeGreaterThanOrEqual(2);
    expect(svg).toContain('fill="#9e9e9e"');
  });
});
