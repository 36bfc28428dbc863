import type { ReceivedSpan } from "../tracing/otlp-receiver.js";
import type { TracedView, TracedViewName, TracesResult } from "./scenarios/traces.js";
import { waterfallChart, type WaterfallMarker } from "./waterfall-chart.js";
import type { TopLevelSpec } from "vega-lite";

/** The waterfall files the report links to, by traced view. */
export const traceChartFiles: Record<TracedViewName, string> = {
  healthy: "coupling-trace-healthy.svg",
  "products-hung": "coupling-trace-products-hung.svg",
  hedged: "coupling-trace-hedged.svg",
};

const titles: Record<TracedViewName, string> = {
  healthy: "A healthy view",
  "products-hung": "Products hanging: the deadline and the fallback",
  hedged: "Products slow, user-orders hedging",
};

const ms = (x: number) => x.toFixed(1);
const deadlineExceeded = 4;
const codeOf = (span: ReceivedSpan) => span.attributes["rpc.grpc.status_code"];

/** A view's spans relative to its trace's start, and the ones the sentences speak of. */
function parts(view: TracedView) {
  const t0 = Math.min(...view.spans.map((s) => s.startMs));
  const at = (t: number) => t - t0;
  const root = view.spans.find((s) => s.kind === "server" && s.service === "user-orders");
  const clients = view.spans.filter((s) => s.kind === "client" && s.parentSpanId === root?.spanId);
  const to = (dependency: string) =>
    clients.filter((s) => s.attributes["peer.service"] === dependency).sort((a, b) => a.startMs - b.startMs);
  const serverOf = (client: ReceivedSpan | undefined) =>
    view.spans.find((s) => s.kind === "server" && client !== undefined && s.parentSpanId === client.spanId);
  const timing = (dependency: string) => view.timings.find((t) => t.dependency === dependency);
  return { t0, at, root, to, serverOf, timing };
}

/** Dashed lines for the deadlines that ended requests and for the hedge delay. */
export function waterfallMarkers(view: TracedView, hedgeDelayMs: number): WaterfallMarker[] {
  if (view.spans.length === 0) return [];
  const { to, timing } = parts(view);
  const markers: WaterfallMarker[] = [];
  for (const dependency of ["users", "orders", "products"]) {
    const first = to(dependency)[0];
    const timeoutMs = timing(dependency)?.timeoutMs;
    if (first === undefined || timeoutMs === undefined) continue;
    if (to(dependency).some((s) => codeOf(s) === deadlineExceeded)) {
      markers.push({ atMs: first.startMs + timeoutMs, label: `${dependency} deadline (${ms(timeoutMs)} ms)` });
    }
    if (view.name === "hedged" && dependency === "products") {
      markers.push({ atMs: first.startMs + hedgeDelayMs, label: `hedge delay (${hedgeDelayMs} ms)` });
    }
  }
  return markers;
}

/** The waterfall chart of each traced view. */
export function traceCharts(traces: TracesResult): { file: string; spec: TopLevelSpec }[] {
  return traces.views.map((view) => ({
    file: traceChartFiles[view.name],
    spec: waterfallChart(
      { text: titles[view.name], subtitle: `${view.setUp}; trace ${view.traceId}` },
      view.spans,
      waterfallMarkers(view, traces.hedge.delayMs),
    ),
  }));
}

function healthySentence(view: TracedView): string {
  const { at, root, to, serverOf } = parts(view);
  const [users] = to("users");
  const [orders] = to("orders");
  const [products] = to("products");
  if (!root || !users || !orders || !products)
    return "Not every span of this view arrived; the chart shows those that did.";
  const inside = serverOf(products);
  return `The view took ${ms(root.endMs - root.startMs)} ms in user-orders. Users' GetUser and orders' ListOrders went out together (at ${ms(at(users.startMs))} and ${ms(at(orders.startMs))} ms) and answered in ${ms(users.endMs - users.startMs)} and ${ms(orders.endMs - orders.startMs)} ms; BatchGetProducts could only follow once the orders named the products, at ${ms(at(products.startMs))} ms, and took ${ms(products.endMs - products.startMs)} ms.${inside ? ` Each dependency's own server span sits inside the request's client span: of products' ${ms(products.endMs - products.startMs)} ms, ${ms(inside.endMs - inside.startMs)} ms were spent in products itself, the rest outside it (encoding, the loopback connection, waiting for a core).` : ""}`;
}

function hungSentence(view: TracedView, callTimeoutMs: number): string {
  const { at, root, to, serverOf, timing } = parts(view);
  const products = to("products");
  const first = products[0];
  const degradation = root?.events.find((e) => e.name === "degradation");
  if (!root || !first) return "Not every span of this view arrived; the chart shows those that did.";
  const inside = serverOf(first);
  const code = codeOf(first) === deadlineExceeded ? "DEADLINE_EXCEEDED" : `status ${String(codeOf(first))}`;
  return `Products' BatchGetProducts request went out at ${ms(at(first.startMs))} ms and ended at ${ms(at(first.endMs))} ms with ${code}, after ${ms(first.endMs - first.startMs)} ms; user-orders had given it a deadline of ${ms(timing("products")?.timeoutMs ?? Number.NaN)} ms, although the caller allowed ${callTimeoutMs} ms.${inside ? ` Products' own span, hanging, ended at ${ms(at(inside.endMs))} ms, when the deadline had passed there too.` : ""}${products.length > 1 ? ` ${products.length - 1} more request(s) to products followed.` : " It was not retried: user-orders retries only UNAVAILABLE."} ${degradation ? `The degradation event (${String(degradation.attributes["peer.service"])}, ${String(degradation.attributes["shopmesh.fallback"])}) follows on the view's span at ${ms(at(degradation.timeMs))} ms, and the view answered ${view.code} at ${ms(at(root.endMs))} ms, with its orders but without product details, rather than failing.` : `The view ended ${view.code} at ${ms(at(root.endMs))} ms.`}`;
}

function hedgedSentence(view: TracedView, traces: TracesResult): string {
  const { at, root, to, serverOf } = parts(view);
  const products = to("products");
  const first = products.find((s) => s.attributes["shopmesh.hedge"] !== true);
  const second = products.find((s) => s.attributes["shopmesh.hedge"] === true);
  if (!root || !first) return "Not every span of this view arrived; the chart shows those that did.";
  const tries =
    view.tries > 1
      ? ` This was the ${ordinal(view.tries)} view sent; in the ones before, no hedge answered first.`
      : "";
  if (!second) {
    return `No hedge was sent in ${view.tries} views: products answered within the hedge delay of ${traces.hedge.delayMs} ms each time.`;
  }
  const hedgeWon = codeOf(second) === 0;
  const [winner, loser] = hedgeWon ? [second, first] : [first, second];
  const held = serverOf(loser);
  return `The first request to products went out at ${ms(at(first.startMs))} ms; with no answer after the hedge delay of ${traces.hedge.delayMs} ms a second, identical request went out at ${ms(at(second.startMs))} ms. ${hedgeWon ? "The hedge" : "The first request"} ${codeOf(winner) === 0 ? "answered" : `ended with status ${String(codeOf(winner))}`} at ${ms(at(winner.endMs))} ms, after ${ms(winner.endMs - winner.startMs)} ms, and ${hedgeWon ? "the first request" : "the hedge"} was cancelled at ${ms(at(loser.endMs))} ms (grey)${held ? `, having been in products for ${ms(held.endMs - held.startMs)} ms` : ""}. The view took ${ms(root.endMs - root.startMs)} ms, for one extra request to products.${tries}`;
}

function ordinal(n: number): string {
  const suffix =
    n % 10 === 1 && n % 100 !== 11
      ? "st"
      : n % 10 === 2 && n % 100 !== 12
        ? "nd"
        : n % 10 === 3 && n % 100 !== 13
          ? "rd"
          : "th";
  return `${n}${suffix}`;
}

/** Section 7: the three traced views, each a waterfall with what it shows. */
export function tracesSection(traces: TracesResult): string[] {
  const spans = traces.views.reduce((sum, v) => sum + v.spans.length, 0);
  const out = [
    "## 7. Traces: one view, span by span",
    "",
    `For this section, run last, the four services were restarted with OpenTelemetry exporting over OTLP/HTTP (JSON) to a receiver in the experiment, with a sampler that records only calls arriving with a sampled \`traceparent\`; the sections above ran without tracing, whose hooks cost every call some CPU even when nothing is recorded. The GetUserOrders calls below were sent with a \`traceparent\` of their own (deadline ${traces.callTimeoutMs} ms), and their spans drawn as they arrived: one row per span (client spans of user-orders marked →, each dependency's server span under the request it answered), on one axis of milliseconds from the view's arrival in user-orders; span events are diamonds, deadlines and the hedge delay dashed lines. ${traces.views.length === 1 ? "Its trace holds" : `These ${traces.views.length} traces hold`} ${spans} spans; the receiver got ${traces.spansReceived} in the whole run (the hedged view's earlier tries included). The step took ${traces.seconds.toFixed(1)} s, ${traces.restartSeconds.toFixed(1)} s of it restarting the services.`,
    "",
  ];
  for (const view of traces.views) {
    const sentence =
      view.name === "healthy"
        ? healthySentence(view)
        : view.name === "products-hung"
          ? hungSentence(view, traces.callTimeoutMs)
          : hedgedSentence(view, traces);
    out.push(
      `### ${titles[view.name]}`,
      "",
      `${view.setUp[0]!.toUpperCase()}${view.setUp.slice(1)}. ${sentence}${view.complete ? "" : ` (Only ${view.spans.length} of the trace's spans arrived within the wait.)`}`,
      "",
      `![waterfall: ${titles[view.name].toLowerCase()}](${traceChartFiles[view.name]})`,
      "",
    );
  }
  return out;
}

/** The traces' line of the summary the command prints. */
export function tracesSummary(traces: TracesResult): string {
  return `traces: ${traces.views.map((v) => `${v.name} ${v.spans.length} spans${v.complete ? "" : " (incomplete)"}`).join(", ")}; ${traces.spansReceived} spans received in the run, ${traces.seconds.toFixed(1)} s`;
}
