import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { AvailabilityResult } from "./scenarios/availability.js";
import type { LatencyResult } from "./scenarios/dependency-latency.js";
import type { EventualResult } from "./scenarios/eventual-consistency.js";
import type { OutageResult } from "./scenarios/outage.js";
import type { StalenessResult } from "./scenarios/staleness.js";
import type { TailResult } from "./scenarios/tail-amplification.js";
import { slowFraction } from "./theory.js";
import { answerKinds } from "./view-load.js";

/** Renders a vega-lite spec to SVG, headless. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const kindColors = { domain: [...answerKinds], range: ["#2e7d32", "#f9a825", "#c62828"] };
const base = { $schema: "https://vega.github.io/schema/vega-lite/v6.json", background: "white" } as const;

/** The column a delay row is drawn in: products alone delayed, or all three. */
function delayFacet(delayed: "products" | "all"): string {
  return delayed === "products" ? "products delayed" : "all three delayed";
}

/** A line chart of latency against the injected delay, one column per delayed set; `y`, `color` and `strokeDash` vary. */
function delayLatencyChart(
  title: TopLevelSpec["title"],
  values: object[],
  encoding: Record<string, unknown>,
): TopLevelSpec {
  return {
    ...base,
    title,
    data: { values },
    facet: {
      column: { field: "delayed", type: "nominal", title: null, sort: [delayFacet("products"), delayFacet("all")] },
    },
    spec: {
      width: 320,
      height: 260,
      mark: { type: "line", point: true },
      encoding: { x: { field: "delayMs", type: "quantitative", title: "injected delay per call (ms)" }, ...encoding },
    },
  } as TopLevelSpec;
}

/** Aggregator p50/p99 against the injected delay, measured (solid) and predicted (dashed), per fan-out mode; the monolith flat. */
export function latencyChart(result: LatencyResult): TopLevelSpec {
  const values = result.rows.flatMap((r) => [
    { delayed: delayFacet(r.delayed), delayMs: r.delayMs, series: `${r.mode} p50`, source: "measured", ms: r.p50 },
    { delayed: delayFacet(r.delayed), delayMs: r.delayMs, series: `${r.mode} p99`, source: "measured", ms: r.p99 },
    {
      delayed: delayFacet(r.delayed),
      delayMs: r.delayMs,
      series: `${r.mode} p50`,
      source: "predicted",
      ms: r.predictedP50,
    },
  ]);
  for (const delayed of [delayFacet("products"), delayFacet("all")]) {
    for (const delayMs of result.delays)
      values.push({ delayed, delayMs, series: "monolith join p99", source: "measured", ms: result.monolith.p99 });
  }
  return delayLatencyChart("GetUserOrders latency against injected dependency delay", values, {
    y: { field: "ms", type: "quantitative", title: "latency (ms)" },
    color: { field: "series", type: "nominal", title: "series" },
    strokeDash: {
      field: "source",
      type: "nominal",
      title: "",
      scale: {
        domain: ["measured", "predicted"],
        range: [
          [1, 0],
          [5, 4],
        ],
      },
    },
  });
}

/** Share of full views against q, measured with its tolerance band and predicted, per variant. */
export function availabilityChart(result: AvailabilityResult): TopLevelSpec {
  const values = result.rows.map((r) => ({
    variant: r.variant,
    q: r.q,
    measured: r.kinds.full.measured,
    low: r.kinds.full.measured - r.kinds.full.tolerance,
    high: Math.min(1, r.kinds.full.measured + r.kinds.full.tolerance),
    predicted: r.kinds.full.predicted,
  }));
  const x = { field: "q", type: "quantitative", title: "failure probability q of each dependency request" } as const;
  const color = { field: "variant", type: "nominal", title: "aggregator" } as const;
  return {
    ...base,
    title: "Full answers: measured (points, ± tolerance) against (1 - q_eff)^3 (lines)",
    width: 480,
    height: 300,
    data: { values },
    layer: [
      {
        mark: { type: "line", strokeDash: [5, 4] },
        encoding: {
          x,
          y: { field: "predicted", type: "quantitative", title: "share of full answers", scale: { domain: [0, 1] } },
          color,
        },
      },
      { mark: "errorbar", encoding: { x, y: { field: "low", type: "quantitative" }, y2: { field: "high" }, color } },
      {
        mark: { type: "point", filled: true, size: 60 },
        encoding: { x, y: { field: "measured", type: "quantitative" }, color },
      },
    ],
  };
}

/** Share of slow views against fan-out n: the 1 - (1 - p)^n curve, measured points, and hedged points. */
export function tailChart(result: TailResult): TopLevelSpec {
  const maxN = Math.max(12, ...result.rows.map((r) => r.fanOut));
  const curve = Array.from({ length: maxN }, (_, i) => ({
    n: i + 1,
    share: slowFraction(result.p, i + 1),
    series: `theory 1 - (1 - ${result.p})^n`,
  }));
  const points = result.rows
    .filter((r) => r.p > 0)
    .map((r) => ({
      n: r.fanOut,
      share: r.measured,
      low: Math.max(0, r.measured - r.tolerance),
      high: r.measured + r.tolerance,
      series: r.hedged ? "measured, hedged" : "measured",
    }));
  const x = { field: "n", type: "quantitative", title: "fan-out n (calls per view)" } as const;
  const color = {
    field: "series",
    type: "nominal",
    title: "",
    scale: { range: ["#1565c0", "#ef6c00", "#555555"] },
  } as const;
  return {
    ...base,
    title: `Slow views (> ${result.thresholdMs} ms) with each call slow (+${result.slowLatencyMs} ms) with p = ${result.p}`,
    width: 480,
    height: 300,
    layer: [
      {
        data: { values: curve },
        mark: { type: "line", strokeDash: [5, 4] },
        encoding: {
          x,
          y: { field: "share", type: "quantitative", title: "share of slow views", axis: { format: "%" } },
          color,
        },
      },
      {
        data: { values: points },
        mark: "errorbar",
        encoding: { x, y: { field: "low", type: "quantitative" }, y2: { field: "high" }, color },
      },
      {
        data: { values: points },
        mark: { type: "point", filled: true, size: 70 },
        encoding: { x, y: { field: "share", type: "quantitative" }, color },
      },
    ],
  };
}

/** Answers per second by kind (stacked), STRONG and EVENTUAL, and latency, with the kill and the restart marked. */
export function outageChart(result: OutageResult): TopLevelSpec {
  // Stacked by hand: bars spanning [second, second + 1) on the same time axis as the latency panel.
  const stacked = (timeline: OutageResult["timeline"]) =>
    timeline.flatMap((s) => {
      let below = 0;
      return answerKinds.map((kind) => {
        const bar = {
          second: s.second,
          end: s.second + 1,
          kind,
          answers: s.counts[kind],
          low: below,
          high: below + s.counts[kind],
        };
        below += s.counts[kind];
        return bar;
      });
    });
  const counts = stacked(result.timeline);
  const eventualCounts = stacked(result.eventual.timeline);
  const latency = [
    ...result.timeline.flatMap((s) =>
      Number.isNaN(s.p50)
        ? []
        : [
            { second: s.second + 0.5, series: "STRONG p50", ms: s.p50 },
            { second: s.second + 0.5, series: "STRONG p99", ms: s.p99 },
          ],
    ),
    ...result.eventual.timeline.flatMap((s) =>
      Number.isNaN(s.p50) ? [] : [{ second: s.second + 0.5, series: "EVENTUAL p50", ms: s.p50 }],
    ),
  ];
  const events = [
    { second: result.killedAtMs / 1000, event: "products killed" },
    { second: result.restartReadyAtMs / 1000, event: "products ready again" },
  ];
  const x = {
    field: "second",
    type: "quantitative" as const,
    title: "seconds into the run",
    scale: { domain: [0, result.durationMs / 1000] },
  };
  const rules = {
    data: { values: events },
    mark: { type: "rule" as const, strokeDash: [4, 3], color: "#333" },
    encoding: { x },
  };
  const bars = (values: typeof counts, title: string) => ({
    width: 560,
    height: 160,
    layer: [
      {
        data: { values },
        mark: { type: "rect" as const, stroke: "white", strokeWidth: 0.5 },
        encoding: {
          x: { ...x, title: null },
          x2: { field: "end" },
          y: { field: "low", type: "quantitative" as const, title },
          y2: { field: "high" },
          color: { field: "kind", type: "nominal" as const, scale: kindColors, title: "answer" },
          tooltip: { field: "answers", type: "quantitative" as const },
        },
      },
      rules,
    ],
  });
  return {
    ...base,
    title: "Products killed and restarted under a steady stream of views",
    // Answer kinds and latency series have their own colours.
    resolve: { scale: { color: "independent" } },
    vconcat: [
      // The two bar panels share one legend of answer kinds.
      { vconcat: [bars(counts, "STRONG answers per second"), bars(eventualCounts, "EVENTUAL answers per second")] },
      {
        width: 560,
        height: 160,
        layer: [
          {
            data: { values: latency },
            mark: { type: "line", point: true },
            encoding: {
              x,
              y: { field: "ms", type: "quantitative", title: "latency (ms)" },
              color: {
                field: "series",
                type: "nominal",
                title: "latency",
                scale: {
                  domain: ["STRONG p50", "STRONG p99", "EVENTUAL p50"],
                  range: ["#1565c0", "#90caf9", "#2e7d32"],
                },
              },
            },
          },
          rules,
          {
            data: { values: events },
            mark: { type: "text", align: "left", dx: 3, dy: -4, baseline: "bottom" },
            encoding: { x, y: { value: 0 }, text: { field: "event" } },
          },
        ],
      },
    ],
  };
}

/**
 * Median and p99 view latency against the injected delay, on a log scale so
 * that all three fit: STRONG (parallel, section 1) climbs with the delay,
 * EVENTUAL and the monolith's join stay flat.
 */
export function eventualChart(latency: LatencyResult, eventual: EventualResult): TopLevelSpec {
  const values = [
    ...latency.rows
      .filter((r) => r.mode === "parallel")
      .flatMap((r) => [
        { delayed: delayFacet(r.delayed), delayMs: r.delayMs, system: "STRONG (parallel)", quantile: "p50", ms: r.p50 },
        { delayed: delayFacet(r.delayed), delayMs: r.delayMs, system: "STRONG (parallel)", quantile: "p99", ms: r.p99 },
      ]),
    ...eventual.latency.rows.flatMap((r) => [
      { delayed: delayFacet(r.delayed), delayMs: r.delayMs, system: "EVENTUAL", quantile: "p50", ms: r.p50 },
      { delayed: delayFacet(r.delayed), delayMs: r.delayMs, system: "EVENTUAL", quantile: "p99", ms: r.p99 },
    ]),
    ...(["products", "all"] as const).flatMap((delayed) =>
      latency.delays.flatMap((delayMs) => [
        { delayed: delayFacet(delayed), delayMs, system: "monolith join", quantile: "p50", ms: latency.monolith.p50 },
        { delayed: delayFacet(delayed), delayMs, system: "monolith join", quantile: "p99", ms: latency.monolith.p99 },
      ]),
    ),
  ];
  return delayLatencyChart(
    {
      text: "GetUserOrders latency against dependency delay: STRONG, EVENTUAL, monolith",
      subtitle: "solid: p50, dashed: p99",
    },
    values,
    {
      y: { field: "ms", type: "quantitative", title: "latency (ms, log scale)", scale: { type: "log" } },
      color: {
        field: "system",
        type: "nominal",
        title: "view",
        scale: { domain: ["STRONG (parallel)", "EVENTUAL", "monolith join"], range: ["#1565c0", "#2e7d32", "#777777"] },
      },
      strokeDash: {
        field: "quantile",
        type: "nominal",
        title: "",
        scale: {
          domain: ["p50", "p99"],
          range: [
            [1, 0],
            [5, 4],
          ],
        },
        legend: null,
      },
    },
  );
}

/**
 * Staleness: on the left the distribution (CDF) of the steady-state figures
 * (orders, and sign-ups with products up and down); on the right every
 * order's staleness against when it was acknowledged, through the reader's
 * outage, on a log scale (milliseconds and seconds on one axis).
 */
export function stalenessChart(staleness: StalenessResult, outage: OutageResult): TopLevelSpec {
  const cdf = (series: string, values: number[]) => {
    // A log axis cannot show 0; nothing is measured below a tenth of a millisecond anyway.
    const sorted = values.map((v) => Math.max(0.1, v)).sort((a, b) => a - b);
    return sorted.map((ms, i) => ({ series, ms, share: (i + 1) / sorted.length }));
  };
  const during = (at: number) => at >= outage.killedAtMs && at < outage.restartReadyAtMs;
  const steady = staleness.writes.filter((w) => w.phase === "steady").map((w) => w.stalenessMs);
  const cdfValues = [
    ...cdf(`orders, steady (N = ${steady.length})`, steady),
    ...cdf(
      `sign-ups, products up (N = ${outage.signUps.outside.n})`,
      outage.signUps.points.filter((p) => !during(p.ackAtMs)).map((p) => p.stalenessMs),
    ),
    ...cdf(
      `sign-ups, products down (N = ${outage.signUps.duringOutage.n})`,
      outage.signUps.points.filter((p) => during(p.ackAtMs)).map((p) => p.stalenessMs),
    ),
  ];
  const phaseNames = {
    steady: "before the kill",
    outage: "made while user-orders was down",
    after: "after it was back",
  } as const;
  const points = staleness.writes.map((w) => ({
    second: w.ackAtMs / 1000,
    ms: Math.max(0.1, w.stalenessMs),
    phase: phaseNames[w.phase],
  }));
  const o = staleness.outage;
  // The kill's label to the left of its line and the restart's to the right, so that they never overlap.
  const events = [
    { second: o.killedAtMs / 1000, event: "user-orders killed", align: "right", dx: -3 },
    { second: o.readyAtMs / 1000, event: "ready again", align: "left", dx: 3 },
  ];
  return {
    ...base,
    title: {
      text: "Staleness of the EVENTUAL view: time from a write's acknowledgement until a view shows it",
      offset: 16,
    },
    // The distribution's series and the timeline's phases each have their own colours.
    resolve: { scale: { color: "independent" }, legend: { color: "independent" } },
    hconcat: [
      {
        width: 300,
        height: 260,
        title: "distribution, streams connected",
        data: { values: cdfValues },
        mark: { type: "line", interpolate: "step-after" },
        encoding: {
          x: { field: "ms", type: "quantitative", title: "staleness (ms, log scale)", scale: { type: "log" } },
          y: { field: "share", type: "quantitative", title: "share of writes seen by then", axis: { format: "%" } },
          color: {
            field: "series",
            type: "nominal",
            title: "writes",
            legend: { orient: "bottom", direction: "vertical", labelLimit: 320 },
          },
        },
      },
      {
        width: 420,
        height: 260,
        title: "orders through user-orders' outage",
        layer: [
          {
            data: { values: points },
            mark: { type: "point", filled: true, size: 18 },
            encoding: {
              x: { field: "second", type: "quantitative", title: "acknowledged at (s into the run)" },
              y: { field: "ms", type: "quantitative", title: "staleness (ms, log scale)", scale: { type: "log" } },
              color: {
                field: "phase",
                type: "nominal",
                title: "order",
                scale: { domain: Object.values(phaseNames), range: ["#2e7d32", "#c62828", "#1565c0"] },
                legend: { orient: "bottom", direction: "vertical", labelLimit: 320 },
              },
            },
          },
          {
            data: { values: events },
            mark: { type: "rule", strokeDash: [4, 3], color: "#333" },
            encoding: { x: { field: "second", type: "quantitative" } },
          },
          ...events.map((e) => ({
            data: { values: [e] },
            mark: {
              type: "text" as const,
              align: e.align as "left" | "right",
              dx: e.dx,
              dy: 4,
              baseline: "top" as const,
            },
            encoding: {
              x: { field: "second", type: "quantitative" as const },
              y: { value: 0 },
              text: { field: "event" },
            },
          })),
        ],
      },
    ],
  };
}
