import type { ReceivedSpan } from "@shopmesh/cli";
import { describe, expect, it } from "vitest";
import { TraceStore } from "../src/server/trace-store.js";

let spanCounter = 0;
function span(traceId: string, name: string, kind: ReceivedSpan["kind"], parentSpanId = ""): ReceivedSpan {
  return {
    service: "user-orders",
    traceId,
    spanId: String(++spanCounter).padStart(16, "0"),
    parentSpanId,
    name,
    kind,
    startMs: 1000 + spanCounter,
    endMs: 1010 + spanCounter,
    attributes: {},
    events: [],
    status: { code: "unset", message: "" },
    links: [],
  };
}

const view = "shopmesh.userorders.v1.UserOrdersService/GetUserOrders";

describe("TraceStore", () => {
  it("keeps only the newest traces, and names the newest view's", () => {
    const store = new TraceStore(2);
    store.add([span("a", view, "server")]);
    store.add([span("b", view, "server")]);
    store.add([span("c", "shopmesh.users.v1.UsersService/GetUser", "server")]);
    expect(store.view("a")).toBeUndefined();
    expect(store.view("b")?.bars).toHaveLength(1);
    // c has no view span: the newest view is still b's.
    expect(store.latestViewTraceId).toBe("b");
    store.add([span("d", "x", "server")]);
    // b is gone, and with it the newest view.
    expect(store.latestViewTraceId).toBeNull();
  });

  it("lays a trace out as a waterfall, children under their parent", () => {
    const store = new TraceStore();
    const root = span("t", view, "server");
    const child = span("t", "shopmesh.users.v1.UsersService/GetUser", "client", root.spanId);
    store.add([child, root]);
    const bars = store.view("t")!.bars;
    expect(bars.map((b) => [b.depth, b.kind])).toEqual([
      [0, "server"],
      [1, "client"],
    ]);
    expect(bars[0]!.startMs).toBe(0);
  });

  it("draws a trace whose parent links loop, or that names a span id twice, keeping each span once", () => {
    const store = new TraceStore();
    const ids = (s: ReceivedSpan, spanId: string, parentSpanId: string): ReceivedSpan => ({
      ...s,
      spanId,
      parentSpanId,
    });
    store.add([
      ids(span("t", view, "server"), "root", ""),
      // The same id again, naming itself as its parent: dropped.
      ids(span("t", "again", "internal"), "root", "root"),
      // A ring of two, with a span under one of them; and a span its own parent.
      ids(span("t", "ring-a", "client"), "a", "b"),
      ids(span("t", "ring-b", "client"), "b", "a"),
      ids(span("t", "under-a", "internal"), "c", "a"),
      ids(span("t", "self", "internal"), "d", "d"),
      // No id at all: "" is what a root names as its parent, so this would be its own child.
      ids(span("t", "no-id", "internal"), "", ""),
    ]);
    const bars = store.view("t")!.bars;
    expect(bars.map((b) => [b.depth, b.label.split(" ").at(-1)])).toEqual([
      [0, "GetUserOrders"],
      [0, "ring-a"],
      [1, "under-a"],
      [0, "ring-b"],
      [0, "self"],
    ]);
  });

  it("caps the spans kept of one trace", () => {
    const store = new TraceStore(10, 3);
    store.add(Array.from({ length: 5 }, () => span("big", "x", "internal")));
    expect(store.view("big")?.bars).toHaveLength(3);
  });
});
