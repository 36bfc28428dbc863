import type { Dataset } from "./dataset.js";
import type { AvailabilityResult } from "./scenarios/availability.js";
import type { LatencyResult } from "./scenarios/dependency-latency.js";
import type { OutageResult } from "./scenarios/outage.js";
import type { TailResult } from "./scenarios/tail-amplification.js";
import { toleranceEpsilon } from "./statistics.js";
import { answerKinds } from "./view-load.js";

/** Where and how a run happened. */
export interface RunInfo {
  command: string;
  quick: boolean;
  startedAt: string;
  seconds: number;
  machine: { cpu: string; cores: number; memoryGiB: number; node: string; os: string; loadAverage: { start: number; end: number } };
  monolithCounts: Record<string, number>;
}

export interface ExperimentResults {
  run: RunInfo;
  dataset: Omit<Dataset, "users" | "products" | "orders">;
  latency: LatencyResult;
  availability: AvailabilityResult;
  tail: TailResult;
  outage: OutageResult;
}

/** The chart files the report links to, by scenario. */
export const chartFiles = {
  latency: "coupling-latency.svg",
  availability: "coupling-availability.svg",
  tail: "coupling-tail.svg",
  outage: "coupling-outage.svg",
} as const;

const pct = (x: number, digits = 1) => `${(x * 100).toFixed(digits)}%`;
const ms = (x: number) => (Number.isNaN(x) ? "–" : x < 1 ? x.toFixed(3) : x.toFixed(1));
const table = (header: string[], rows: (string | number)[][]) =>
  [`| ${header.join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");

/** The report as Markdown. */
export function renderReport(results: ExperimentResults): string {
  const { run, dataset, latency, availability, tail, outage } = results;
  const size = dataset.size;
  const orders = size.users * size.ordersPerUser;
  const out: string[] = [];
  out.push(
    "# What synchronous coupling costs, measured",
    "",
    `Produced by \`${run.command}\`${run.quick ? " (quick mode: small samples, for CI)" : ""} on ${run.startedAt}, in ${Math.round(run.seconds)} s.`,
    "",
    `Machine: ${run.machine.cores} × ${run.machine.cpu}, ${run.machine.memoryGiB.toFixed(0)} GiB memory, ${run.machine.os}, Node.js ${run.machine.node}; 1-minute load average ${run.machine.loadAverage.start.toFixed(2)} at the start and ${run.machine.loadAverage.end.toFixed(2)} at the end (the experiment's own processes included).`,
    "The four services, the load generator and the monolith share these cores, so absolute latencies include queueing on a busy machine; the comparisons are what matter.",
    "",
    "## Set-up",
    "",
    `The experiment starts its own mesh (users, products, orders, user-orders as separate processes on loopback, fault injection on) in a temporary directory and seeds it through the services' own contracts: ${size.users} customers (SignUp), ${size.products} products (CreateProduct), ${orders} orders of ${size.linesPerOrder} lines each (${size.ordersPerUser} per customer, CreateOrder with the customer's token; every customer's ${size.ordersPerUser * size.linesPerOrder} lines name distinct products). Seeding took ${dataset.seconds.toFixed(0)} s.`,
    `The monolith is one SQLite database in the experiment's process holding the same rows (${Object.entries(run.monolithCounts).map(([t, n]) => `${n} ${t}`).join(", ")}) and answering the same question with one JOIN.`,
    "",
    "Every call is GetUserOrders for one customer (cycling through all of them), and every answer is one of:",
    "- **full**: no degradation listed;",
    "- **degraded**: answered, with a degradation listed (no profile, or no product details);",
    "- **failed**: an error status (orders failed: a view without orders has nothing to show).",
    "",
    "The stale-orders cache is off (STALE_CACHE_SIZE=0) throughout, so a failed orders call is a failed answer, not a stale one.",
    `A measured share agrees with a predicted probability p over N calls when |measured - p| <= 3 * sqrt(p (1 - p) / N) + 3 / N + ${toleranceEpsilon}: three binomial standard errors, plus three calls' worth (the normal approximation understates the spread when N * p is small), plus a small allowance for timing effects the model leaves out.`,
    "",
  );

  // 1. Latency
  out.push("## 1. Dependency latency: parallel, sequential, monolith", "");
  out.push(
    `Products (then all three dependencies) get a fixed delay on every call. The aggregator runs with its default parallel fan-out (users and orders at once, then products) and with FAN_OUT=sequential (users, then orders, then products). ${latency.perCell} calls per row, with 1 to 8 in flight (more for longer delays) so that the offered load stays near 20 views a second and the figures measure the delay, not a queue for the CPU; the default timeouts (300, 500, 300 ms) are above every delay, so no call is cut off. Predicted = the same mode's figure at 0 ms plus the delay on the critical path: +d when products is delayed (in both modes products waits for the orders' product ids), +2d in parallel and +3d in sequence when all three are.`,
    "",
  );
  out.push(
    table(
      ["delayed", "fan-out", "delay (ms)", "N", "full", "p50 measured (ms)", "p50 predicted (ms)", "p99 measured (ms)", "p99 predicted (ms)"],
      latency.rows.map((r) => [r.delayed === "all" ? "all three" : "products", r.mode, r.delayMs, r.n, r.full, ms(r.p50), ms(r.predictedP50), ms(r.p99), ms(r.predictedP99)]),
    ),
    "",
    table(
      ["monolith (one process, one SQLite file, one JOIN)", "N", "p50 (ms)", "p99 (ms)", "mean (ms)", "predicted"],
      [["the same view, any delay", latency.monolith.n, ms(latency.monolith.p50), ms(latency.monolith.p99), ms(latency.monolith.mean), "independent of any service's delay"]],
    ),
    "",
  );
  const row = (mode: string, delayed: string, d: number) => latency.rows.find((r) => r.mode === mode && r.delayed === delayed && r.delayMs === d);
  const maxD = Math.max(...latency.delays);
  const pp0 = row("parallel", "products", 0);
  const ppMax = row("parallel", "products", maxD);
  const spMax = row("sequential", "products", maxD);
  const paMax = row("parallel", "all", maxD);
  const saMax = row("sequential", "all", maxD);
  if (pp0 && ppMax && spMax && paMax && saMax) {
    out.push(
      `**What it shows.** With no delay the aggregator answers in ${ms(pp0.p50)} ms at the median, against ${ms(latency.monolith.p50)} ms for the monolith's join: ${Math.round(pp0.p50 / Math.max(latency.monolith.p50, 0.001))} times slower before anything goes wrong, because one question becomes three network calls, three processes and four (de)serialisations. Every millisecond a dependency loses is passed straight on to the caller: with products ${maxD} ms slower, the median view takes ${ms(ppMax.p50)} ms in parallel and ${ms(spMax.p50)} ms in sequence (predicted ${ms(ppMax.predictedP50)} and ${ms(spMax.predictedP50)}). Parallel fan-out does not help here, since products can only be asked once orders has answered. It helps when the independent calls are slow: with all three ${maxD} ms slower, parallel takes ${ms(paMax.p50)} ms and sequential ${ms(saMax.p50)} ms (predicted ${ms(paMax.predictedP50)} and ${ms(saMax.predictedP50)}). The monolith has no remote dependency to slow down; its line stays flat. ${latency.agreement.agreed} of ${latency.agreement.checked} views compared line by line were identical in both systems, so they answer the same question over the same data.`,
      "",
    );
  }
  out.push(`![latency against delay](${chartFiles.latency})`, "");

  // 2. Availability
  out.push("## 2. Availability: the product of the parts", "");
  out.push(
    `Each dependency fails every request with probability q (UNAVAILABLE), independently. Without retries a dependency call fails with q; with 2 retries on UNAVAILABLE it fails only when all three requests do, q_eff = q^3. Predicted: full = (1 - q_eff)^3 (the product of three availabilities), failed = q_eff (orders failed), degraded = the rest. ${availability.perCell} calls per row, ${availability.concurrency} at a time. Each cell shows measured / predicted ± tolerance.`,
    "",
  );
  const cell = (f: { measured: number; predicted: number; tolerance: number; within: boolean }) =>
    `${pct(f.measured)} / ${pct(f.predicted)} ± ${pct(f.tolerance)}${f.within ? "" : " ✗"}`;
  out.push(
    table(
      ["aggregator", "q", "q_eff", "N", "full", "degraded", "failed", "within tolerance", "downstream requests per answer"],
      availability.rows.map((r) => [
        r.variant,
        r.q,
        r.qEffective < 0.001 ? r.qEffective.toExponential(1) : r.qEffective.toFixed(3),
        r.n,
        cell(r.kinds.full),
        cell(r.kinds.degraded),
        cell(r.kinds.failed),
        answerKinds.every((k) => r.kinds[k].within) ? "yes" : `no (${answerKinds.filter((k) => !r.kinds[k].within).join(", ")})`,
        r.requestsPerView.toFixed(2),
      ]),
    ),
    "",
  );
  const worst = availability.rows.filter((r) => r.retries === 0).at(-1);
  const worstRetried = availability.rows.filter((r) => r.retries > 0).at(-1);
  const allWithin = availability.rows.every((r) => answerKinds.every((k) => r.kinds[k].within));
  if (worst && worstRetried) {
    out.push(
      `**What it shows.** Availability multiplies: with each dependency failing ${pct(worst.q, 0)} of the time, only ${pct(worst.kinds.full.measured)} of views are complete (predicted ${pct(worst.kinds.full.predicted)}), and ${pct(worst.kinds.failed.measured)} fail outright, because the view cannot be built without orders. Three dependencies at 99% would give about 97%. The fallbacks turn most of the losses into degraded answers rather than errors, but the user still sees less. Retries buy back availability cheaply when failures are independent: the same ${pct(worstRetried.q, 0)} failure rate gives ${pct(worstRetried.kinds.full.measured)} full views (predicted ${pct(worstRetried.kinds.full.predicted)}), for ${worstRetried.requestsPerView.toFixed(2)} downstream requests per answer instead of ${worst.requestsPerView.toFixed(2)}. The breaker stays closed here (five failures in a row after retries are practically impossible at these rates); it earns its keep in the outage below. ${allWithin ? "Every measured share is within its tolerance of the prediction." : "Figures marked ✗ are outside their tolerance: see the rows for which."}`,
      "",
    );
  }
  out.push(`![full answers against q](${chartFiles.availability})`, "");

  // 3. Tail
  out.push("## 3. Tail amplification (Dean & Barroso, The Tail at Scale, 2013)", "");
  out.push(
    `Every dependency call gets +${tail.slowLatencyMs} ms with probability p = ${tail.p}; a view is slow when it takes more than ${tail.thresholdMs} ms. With n calls per view, a view is slow when any of them is: predicted 1 - (1 - p)^n. The fan-out sweep splits the products lookup into k parallel BatchGetProducts shards (PRODUCTS_SHARDS=k, n = 2 + k; n is read from the answers' timings). Hedged rows send a second request when the first has not answered after about the dependency's p95 for one call, taken from the unhedged k = 1 row (${Object.entries(tail.hedgeDelaysMs).map(([d, v]) => `${d} ${v} ms`).join(", ")}); then a call is slow only when both requests are, predicted 1 - (1 - p^2)^n, and about 5% of calls are sent twice. ${tail.perCell} calls per row (half that in the row without injected slowness), ${tail.concurrency} at a time.`,
    "",
  );
  out.push(
    table(
      ["shards k", "fan-out n", "p", "hedged", "N", "slow", "slow measured", "slow predicted ± tolerance", "within", "p50 (ms)", "p99 (ms)", "extra requests measured / predicted"],
      tail.rows.map((r) => [
        r.shards,
        r.fanOut,
        r.p,
        r.hedged ? "yes" : "no",
        r.n,
        r.slow,
        pct(r.measured, 2),
        `${pct(r.predicted, 2)} ± ${pct(r.tolerance, 2)}`,
        r.within ? "yes" : "no",
        ms(r.p50),
        ms(r.p99),
        r.hedged ? `${pct(r.extraLoad)} / ~${pct(r.predictedExtraLoad, 0)}` : `${pct(r.extraLoad)} / 0%`,
      ]),
    ),
    "",
  );
  const unhedged = tail.rows.filter((r) => !r.hedged && r.p > 0);
  const first = unhedged[0];
  const last = unhedged.at(-1);
  const baseline = tail.rows.find((r) => r.p === 0);
  if (first && last && baseline) {
    out.push(
      `**What it shows.** A rare slow call becomes a common slow answer: each call is slow only ${pct(tail.p, 0)} of the time, yet ${pct(first.measured)} of views are slow with n = ${first.fanOut} (predicted ${pct(first.predicted)}) and ${pct(last.measured)} with n = ${last.fanOut} (predicted ${pct(last.predicted)}). The more services a request touches, the more surely it meets one of them on a bad moment, and the p99 of the view is set by the dependencies' slow tail, not their median. Without injected slowness ${pct(baseline.measured, 2)} of views cross the threshold, so the slow views above are the injected tail, not load. ${hedgingSentence(tail)}`,
      "",
    );
  }
  out.push(`![slow views against fan-out](${chartFiles.tail})`, "");

  // 4. Outage
  out.push("## 4. Outage: products killed and restarted", "");
  out.push(
    `A steady ${outage.ratePerSecond} views per second for ${outage.durationMs / 1000} s (open loop: a call is sent on schedule whatever the others are doing). Products is killed with SIGKILL at ${(outage.killedAtMs / 1000).toFixed(1)} s and started again at ${(outage.restartedAtMs / 1000).toFixed(1)} s; it was ready at ${(outage.restartReadyAtMs / 1000).toFixed(1)} s. The aggregator runs with its defaults (timeouts, 2 retries, breaker opening after 5 failures for 2 s). Predicted: every view full before the kill; while products is down every view degraded (lines without product details) and none failed, since users and orders still answer; full again within about the reconnect backoff (at most 1 s) plus the breaker's 2 s cool-down after products is back.`,
    "",
  );
  out.push(
    table(
      ["period", "N", "full", "degraded", "failed", "predicted"],
      [
        ["whole run", outage.n, outage.counts.full, outage.counts.degraded, outage.counts.failed, "–"],
        ["products down (kill to ready)", answerKinds.reduce((s, k) => s + outage.duringOutage[k], 0), outage.duringOutage.full, outage.duringOutage.degraded, outage.duringOutage.failed, "all degraded, none failed"],
      ],
    ),
    "",
    table(
      ["second", "full", "degraded", "failed", "p50 (ms)", "p99 (ms)"],
      outage.timeline.map((s) => [s.second, s.counts.full, s.counts.degraded, s.counts.failed, ms(s.p50), ms(s.p99)]),
    ),
    "",
  );
  const outageTotal = answerKinds.reduce((s, k) => s + outage.duringOutage[k], 0);
  out.push(
    `**What it shows.** When products dies, the views ${outage.firstDegradedAfterKillMs === undefined ? "never degrade" : `degrade within ${ms(outage.firstDegradedAfterKillMs)} ms`}: during the outage ${outage.duringOutage.degraded} of ${outageTotal} answers were degraded, ${outage.duringOutage.failed} failed and ${outage.duringOutage.full} were full. The fallback keeps the page up (orders, quantities, prices), but every customer loses the product names for as long as products is down: in a synchronous design one service's outage is every caller's outage, softened only by what the caller can do without. A refused connection fails fast, and the open breaker then stops even trying, so latency does not climb. After products was ready again the last incomplete view came ${ms(outage.recoveredAfterReadyMs)} ms later: the aggregator's channel reconnects and the breaker lets a probe through without anyone restarting it.${outage.skipped > 0 ? ` ${outage.skipped} scheduled calls were skipped because ${64} were already in flight.` : ""}`,
    "",
    `![answers per second through the outage](${chartFiles.outage})`,
    "",
  );
  return out.join("\n");
}

/** What the hedged rows show, beside the unhedged rows of the same fan-out. */
function hedgingSentence(tail: TailResult): string {
  const parts = tail.rows
    .filter((r) => r.hedged)
    .map((h) => {
      const plain = tail.rows.find((r) => !r.hedged && r.p === h.p && r.shards === h.shards);
      const load = h.extraLoad <= 2 * h.predictedExtraLoad ? "close to the ~5% the p95 rule predicts" : `well above the ~5% the p95 rule predicts`;
      return `at n = ${h.fanOut} from ${plain ? pct(plain.measured, 2) : "–"} to ${pct(h.measured, 2)} (predicted ${pct(h.predicted, 2)}) for ${pct(h.extraLoad)} more downstream requests, ${load}`;
    });
  const costly = tail.rows.filter((r) => r.hedged && r.extraLoad > 2 * r.predictedExtraLoad);
  return (
    `Hedging cuts the slow share ${parts.join("; and ")}.` +
    (costly.length > 0
      ? ` The price is not fixed: the delay is one call's p95 measured with three calls per view, and with ${costly.map((r) => r.fanOut).join(", ")} calls per view in flight at once every call is slower on these two cores, so far more of them cross it and are sent twice. A hedge delay has to follow the latency the calls have now, or hedging adds load exactly when the fan-out is already high.`
      : " The price is small because the hedge goes out only for the calls already slower than the usual p95.")
  );
}

/** A few lines for the terminal. */
export function summaryLines(results: ExperimentResults): string[] {
  const { latency, availability, tail, outage } = results;
  const p0 = latency.rows.find((r) => r.mode === "parallel" && r.delayMs === 0);
  const maxD = Math.max(...latency.delays);
  const pMax = latency.rows.find((r) => r.mode === "parallel" && r.delayed === "all" && r.delayMs === maxD);
  const sMax = latency.rows.find((r) => r.mode === "sequential" && r.delayed === "all" && r.delayMs === maxD);
  const within = availability.rows.filter((r) => answerKinds.every((k) => r.kinds[k].within)).length;
  const unhedged = tail.rows.filter((r) => !r.hedged && r.p > 0);
  const hedged = tail.rows.filter((r) => r.hedged).at(-1);
  return [
    `latency: p50 ${ms(p0?.p50 ?? Number.NaN)} ms (monolith join ${ms(latency.monolith.p50)} ms); all deps +${maxD} ms: parallel ${ms(pMax?.p50 ?? Number.NaN)} ms, sequential ${ms(sMax?.p50 ?? Number.NaN)} ms`,
    `availability: ${within} of ${availability.rows.length} rows within tolerance of (1 - q_eff)^3; ${availability.rows.map((r) => `q=${r.q}${r.retries ? "+retries" : ""} ${pct(r.kinds.full.measured)} full`).join(", ")}`,
    `tail: ${unhedged.map((r) => `n=${r.fanOut} ${pct(r.measured)} slow (theory ${pct(r.predicted)})`).join(", ")}${hedged ? `; hedged n=${hedged.fanOut} ${pct(hedged.measured, 2)} for ${pct(hedged.extraLoad)} extra requests` : ""}`,
    `outage: while products was down ${outage.duringOutage.degraded} degraded, ${outage.duringOutage.failed} failed, ${outage.duringOutage.full} full; all full again ${ms(outage.recoveredAfterReadyMs)} ms after it was back`,
  ];
}
