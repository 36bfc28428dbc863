import type { Dataset } from "./dataset.js";
import type { AvailabilityResult } from "./scenarios/availability.js";
import type { LatencyResult } from "./scenarios/dependency-latency.js";
import type { EventualResult } from "./scenarios/eventual-consistency.js";
import type { OutageResult } from "./scenarios/outage.js";
import type { StalenessResult } from "./scenarios/staleness.js";
import type { TailResult } from "./scenarios/tail-amplification.js";
import type { TracesResult } from "./scenarios/traces.js";
import { tracesSection, tracesSummary } from "./trace-report.js";
import { toleranceEpsilon, type Spread } from "./statistics.js";
import { answerKinds } from "./view-load.js";

/** Where and how a run happened. */
export interface RunInfo {
  command: string;
  quick: boolean;
  startedAt: string;
  seconds: number;
  machine: {
    cpu: string;
    cores: number;
    memoryGiB: number;
    node: string;
    os: string;
    loadAverage: { start: number; end: number };
  };
  monolithCounts: Record<string, number>;
}

export interface ExperimentResults {
  run: RunInfo;
  dataset: Omit<Dataset, "users" | "products" | "orders">;
  latency: LatencyResult;
  availability: AvailabilityResult;
  tail: TailResult;
  outage: OutageResult;
  eventual: EventualResult;
  staleness: StalenessResult;
  traces: TracesResult;
}

/** The chart files the report links to, by scenario. */
export const chartFiles = {
  latency: "coupling-latency.svg",
  availability: "coupling-availability.svg",
  tail: "coupling-tail.svg",
  outage: "coupling-outage.svg",
  eventual: "coupling-eventual.svg",
  staleness: "coupling-staleness.svg",
} as const;

const pct = (x: number, digits = 1) => `${(x * 100).toFixed(digits)}%`;
const ms = (x: number) => (Number.isNaN(x) ? "–" : x < 1 ? x.toFixed(3) : x.toFixed(1));
const table = (header: string[], rows: (string | number)[][]) =>
  [
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");

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
    `The monolith is one SQLite database in the experiment's process holding the same rows (${Object.entries(
      run.monolithCounts,
    )
      .map(([t, n]) => `${n} ${t}`)
      .join(", ")}) and answering the same question with one JOIN.`,
    "",
    "Every call is GetUserOrders for one customer (cycling through all of them), and every answer is one of:",
    "- **full**: no degradation listed;",
    "- **degraded**: answered, with a degradation listed (no profile, or no product details);",
    "- **failed**: an error status (orders failed: a view without orders has nothing to show).",
    "",
    "Sections 5 and 6 also ask for EVENTUAL views (GetUserOrders with consistency EVENTUAL, answered from user-orders' own projection of the services' event streams). Such an answer calls nothing that could fail, so it counts as full only when its content is complete: a profile, and product details on every line (an answer that lacks details because the products stream is behind also lists a products degradation, as the end of section 6 shows).",
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
      [
        "delayed",
        "fan-out",
        "delay (ms)",
        "N",
        "full",
        "p50 measured (ms)",
        "p50 predicted (ms)",
        "p99 measured (ms)",
        "p99 predicted (ms)",
      ],
      latency.rows.map((r) => [
        r.delayed === "all" ? "all three" : "products",
        r.mode,
        r.delayMs,
        r.n,
        r.full,
        ms(r.p50),
        ms(r.predictedP50),
        ms(r.p99),
        ms(r.predictedP99),
      ]),
    ),
    "",
    table(
      ["monolith (one process, one SQLite file, one JOIN)", "N", "p50 (ms)", "p99 (ms)", "mean (ms)", "predicted"],
      [
        [
          "the same view, any delay",
          latency.monolith.n,
          ms(latency.monolith.p50),
          ms(latency.monolith.p99),
          ms(latency.monolith.mean),
          "independent of any service's delay",
        ],
      ],
    ),
    "",
  );
  const row = (mode: string, delayed: string, d: number) =>
    latency.rows.find((r) => r.mode === mode && r.delayed === delayed && r.delayMs === d);
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
      [
        "aggregator",
        "q",
        "q_eff",
        "N",
        "full",
        "degraded",
        "failed",
        "within tolerance",
        "downstream requests per answer",
      ],
      availability.rows.map((r) => [
        r.variant,
        r.q,
        r.qEffective < 0.001 ? r.qEffective.toExponential(1) : r.qEffective.toFixed(3),
        r.n,
        cell(r.kinds.full),
        cell(r.kinds.degraded),
        cell(r.kinds.failed),
        answerKinds.every((k) => r.kinds[k].within)
          ? "yes"
          : `no (${answerKinds.filter((k) => !r.kinds[k].within).join(", ")})`,
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
    `Every dependency call gets +${tail.slowLatencyMs} ms with probability p = ${tail.p}; a view is slow when it takes more than ${tail.thresholdMs} ms. With n calls per view, a view is slow when any of them is: predicted 1 - (1 - p)^n. The fan-out sweep splits the products lookup into k parallel BatchGetProducts shards (PRODUCTS_SHARDS=k, n = 2 + k; n is read from the answers' timings). Hedged rows send a second request when the first has not answered after about the dependency's p95 for one call, taken from the unhedged k = 1 row (${Object.entries(
      tail.hedgeDelaysMs,
    )
      .map(([d, v]) => `${d} ${v} ms`)
      .join(
        ", ",
      )}); then a call is slow only when both requests are, predicted 1 - (1 - p^2)^n, and about 5% of calls are sent twice. ${tail.perCell} calls per row (half that in the row without injected slowness), ${tail.concurrency} at a time.`,
    "",
  );
  out.push(
    table(
      [
        "shards k",
        "fan-out n",
        "p",
        "hedged",
        "N",
        "slow",
        "slow measured",
        "slow predicted ± tolerance",
        "within",
        "p50 (ms)",
        "p99 (ms)",
        "extra requests measured / predicted",
      ],
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
    `A steady ${outage.ratePerSecond} views per second for ${outage.durationMs / 1000} s (open loop: a call is sent on schedule whatever the others are doing). Products is killed with SIGKILL at ${(outage.killedAtMs / 1000).toFixed(1)} s and started again at ${(outage.restartedAtMs / 1000).toFixed(1)} s; it was ready at ${(outage.restartReadyAtMs / 1000).toFixed(1)} s. The aggregator runs with its defaults (timeouts, 2 retries, breaker opening after 5 failures for 2 s). Beside each STRONG view an EVENTUAL view of another customer is sent (so ${2 * outage.ratePerSecond} views a second in all), and new customers sign up at ${outage.signUps.ratePerSecond} a second; section 6 reports on those. Predicted: every view full before the kill; while products is down every view degraded (lines without product details) and none failed, since users and orders still answer; full again within about the reconnect backoff (at most 1 s) plus the breaker's 2 s cool-down after products is back.`,
    "",
  );
  out.push(
    table(
      ["period", "N", "full", "degraded", "failed", "predicted"],
      [
        ["whole run", outage.n, outage.counts.full, outage.counts.degraded, outage.counts.failed, "–"],
        [
          "products down (kill to ready)",
          answerKinds.reduce((s, k) => s + outage.duringOutage[k], 0),
          outage.duringOutage.full,
          outage.duringOutage.degraded,
          outage.duringOutage.failed,
          "all degraded, none failed",
        ],
        [
          "EVENTUAL, whole run",
          outage.eventual.n,
          outage.eventual.counts.full,
          outage.eventual.counts.degraded,
          outage.eventual.counts.failed,
          "–",
        ],
        [
          "EVENTUAL, products down",
          answerKinds.reduce((s, k) => s + outage.eventual.duringOutage[k], 0),
          outage.eventual.duringOutage.full,
          outage.eventual.duringOutage.degraded,
          outage.eventual.duringOutage.failed,
          "all full, none failed",
        ],
      ],
    ),
    "",
    table(
      [
        "second",
        "full",
        "degraded",
        "failed",
        "p50 (ms)",
        "p99 (ms)",
        "EVENTUAL full / degraded / failed",
        "EVENTUAL p50 (ms)",
      ],
      outage.timeline.map((s) => {
        const e = outage.eventual.timeline[s.second];
        return [
          s.second,
          s.counts.full,
          s.counts.degraded,
          s.counts.failed,
          ms(s.p50),
          ms(s.p99),
          e ? answerKinds.map((k) => e.counts[k]).join(" / ") : "–",
          ms(e?.p50 ?? Number.NaN),
        ];
      }),
    ),
    "",
  );
  const outageTotal = answerKinds.reduce((s, k) => s + outage.duringOutage[k], 0);
  const eventualDown = answerKinds.reduce((s, k) => s + outage.eventual.duringOutage[k], 0);
  out.push(
    `**What it shows.** When products dies, the views ${outage.firstDegradedAfterKillMs === undefined ? "never degrade" : `degrade within ${ms(outage.firstDegradedAfterKillMs)} ms`}: during the outage ${outage.duringOutage.degraded} of ${outageTotal} answers were degraded, ${outage.duringOutage.failed} failed and ${outage.duringOutage.full} were full. The fallback keeps the page up (orders, quantities, prices), but every customer loses the product names for as long as products is down: in a synchronous design one service's outage is every caller's outage, softened only by what the caller can do without. A refused connection fails fast, and the open breaker then stops even trying, so latency does not climb. After products was ready again the last incomplete view came ${ms(outage.recoveredAfterReadyMs)} ms later: the aggregator's channel reconnects and the breaker lets a probe through without anyone restarting it.${outage.skipped > 0 ? ` ${outage.skipped} scheduled calls were skipped because ${outage.maxInFlight} were already in flight.` : ""} The EVENTUAL views sent beside them ${eventualDown > 0 && outage.eventual.duringOutage.full === eventualDown ? "did not notice" : "fared differently"}: ${outage.eventual.duringOutage.full} of ${eventualDown} were full while products was down (p50 ${ms(outage.eventual.latencyDuringOutage.p50)} ms), because the product details they show are already in user-orders' projection.`,
    "",
    `![answers per second through the outage](${chartFiles.outage})`,
    "",
  );
  out.push(...eventualSection(results), ...stalenessSection(results), ...tracesSection(results.traces));
  return out.join("\n");
}

/** Section 5: EVENTUAL views under the latency and availability sweeps' faults, beside STRONG. */
function eventualSection(results: ExperimentResults): string[] {
  const { latency, availability, eventual } = results;
  const out: string[] = [];
  const heads = eventual.catchUp.heads;
  out.push(
    "## 5. EVENTUAL beside STRONG under the same faults",
    "",
    `users, products and orders write every change as an event to a transactional outbox and serve it on StreamEvents; user-orders keeps a projection in its own SQLite file, fed by those three streams, and answers GetUserOrders with consistency EVENTUAL from it, without calling anything. After seeding, the experiment polled an EVENTUAL view every 10 ms until all three streams were connected and applied up to the head that each source itself reported (users ${heads.users}, products ${heads.products}, orders ${heads.orders} events): that took ${(eventual.catchUp.waitedMs / 1000).toFixed(2)} s${eventual.catchUp.waitedMs < 1000 ? ", so the projection had kept up with the seeding" : ""}. Then the same faults as in sections 1 and 2, with EVENTUAL views: the STRONG columns repeat those sections' figures. The aggregator runs with its defaults; EVENTUAL does not use any of them.`,
    "",
    `### Latency against dependency delay`,
    "",
    `${eventual.latency.perCell} EVENTUAL calls per row, one at a time. Predicted: flat, the same as with no delay (no downstream call is made, so no delay can reach it). A p50 counts as flat when it is within a tenth of what the delay adds to a STRONG view's critical path (+d for products, +2d for all three in parallel), plus 1 ms for the noise of two busy cores: any real dependence on the delay would fall outside. STRONG is the parallel fan-out of section 1 (${latency.perCell} calls per row).`,
    "",
  );
  const strongRow = (delayed: string, d: number) =>
    latency.rows.find((r) => r.mode === "parallel" && r.delayed === delayed && r.delayMs === d);
  out.push(
    table(
      [
        "delayed",
        "delay (ms)",
        "N",
        "full",
        "EVENTUAL p50 measured / predicted ± tolerance (ms)",
        "flat",
        "EVENTUAL p99 measured / predicted (ms)",
        "STRONG p50 (ms)",
        "STRONG p99 (ms)",
        "monolith p50 (ms)",
      ],
      eventual.latency.rows.map((r) => {
        const strong = strongRow(r.delayed, r.delayMs);
        return [
          r.delayed === "all" ? "all three" : "products",
          r.delayMs,
          r.n,
          r.full,
          `${ms(r.p50)} / ${ms(r.predictedP50)} ± ${ms(r.tolerance)}`,
          r.within ? "yes" : "no",
          `${ms(r.p99)} / ${ms(r.predictedP99)}`,
          ms(strong?.p50 ?? Number.NaN),
          ms(strong?.p99 ?? Number.NaN),
          ms(latency.monolith.p50),
        ];
      }),
    ),
    "",
  );
  const maxD = Math.max(...latency.delays);
  const e0 = eventual.latency.rows.find((r) => r.delayMs === 0);
  const eMax = eventual.latency.rows.find((r) => r.delayed === "all" && r.delayMs === maxD);
  const s0 = strongRow("products", 0);
  const sMax = strongRow("all", maxD);
  // The no-delay rows are the baseline the others are compared with, so they cannot fail: count the rest.
  const delayedRows = eventual.latency.rows.filter((r) => r.delayMs > 0);
  const flat = delayedRows.filter((r) => r.within).length;
  if (e0 && eMax && s0 && sMax) {
    out.push(
      `**What it shows.** Asked for an EVENTUAL view, user-orders no longer passes its dependencies' latency on: with all three ${maxD} ms slower the median EVENTUAL view takes ${ms(eMax.p50)} ms, against ${ms(e0.p50)} ms with no delay, while the STRONG view went from ${ms(s0.p50)} to ${ms(sMax.p50)} ms. ${flat} of ${delayedRows.length} rows with a delay are flat within the tolerance. It is ${Math.round((e0.p50 / Math.max(s0.p50, 0.001)) * 100)}% of the healthy STRONG view, since one local SQLite read replaces three network calls, and still ${Math.round(e0.p50 / Math.max(latency.monolith.p50, 0.001))} times the monolith's join: the caller still makes one gRPC call to another process, with its token checked and the answer serialised.`,
      "",
      `![latency against delay: STRONG, EVENTUAL, monolith](${chartFiles.eventual})`,
      "",
    );
  }

  out.push(
    "### Availability against dependency failures",
    "",
    `Each dependency fails every request with probability q (UNAVAILABLE), as in section 2. ${eventual.availability.perCell} EVENTUAL calls per row, ${eventual.availability.concurrency} at a time. Predicted: every answer full, none degraded or failed, whatever q is. The tolerance is section 2's, 3 * sqrt(p (1 - p) / N) + 3 / N + ${toleranceEpsilon}, which for p = 1 or 0 is 3 / N + ${toleranceEpsilon}. STRONG is section 2's measurement with the same q (${availability.perCell} calls per row).`,
    "",
  );
  const cell = (f: { measured: number; predicted: number; tolerance: number; within: boolean }) =>
    `${pct(f.measured)} / ${pct(f.predicted)} ± ${pct(f.tolerance)}${f.within ? "" : " ✗"}`;
  const strongFull = (variantRetries: boolean, q: number) => {
    const r = availability.rows.find((row) => row.q === q && row.retries > 0 === variantRetries);
    return r ? pct(r.kinds.full.measured) : "–";
  };
  out.push(
    table(
      [
        "q",
        "N",
        "full",
        "degraded",
        "failed",
        "within tolerance",
        "streams connected",
        "EVENTUAL p50 / p99 (ms)",
        "STRONG full, no retries",
        "STRONG full, 2 retries + breaker",
      ],
      eventual.availability.rows.map((r) => [
        r.q,
        r.n,
        cell(r.kinds.full),
        cell(r.kinds.degraded),
        cell(r.kinds.failed),
        answerKinds.every((k) => r.kinds[k].within) ? "yes" : "no",
        `${r.streamsConnected} of ${r.n}`,
        `${ms(r.p50)} / ${ms(r.p99)}`,
        strongFull(false, r.q),
        strongFull(true, r.q),
      ]),
    ),
    "",
  );
  const worst = eventual.availability.rows.at(-1);
  const allWithin = eventual.availability.rows.every((r) => answerKinds.every((k) => r.kinds[k].within));
  const connected = eventual.availability.rows.reduce((sum, r) => sum + r.streamsConnected, 0);
  const total = eventual.availability.rows.reduce((sum, r) => sum + r.n, 0);
  if (worst) {
    out.push(
      `**What it shows.** The product of availabilities does not apply to a view that calls nothing: with each dependency failing ${pct(worst.q, 0)} of the time, ${pct(worst.kinds.full.measured)} of EVENTUAL views were full and ${pct(worst.kinds.failed.measured)} failed, where STRONG managed ${strongFull(false, worst.q)} without retries and ${strongFull(true, worst.q)} with them. ${allWithin ? "Every share is within its tolerance of the prediction." : "Not every share is within its tolerance of the prediction (marked ✗)."} What EVENTUAL gives up is freshness (section 6), not availability. ` +
        `The injected faults do not reach the projection's streams in this set-up: a fault is set for one method (GetUser, ListOrders, BatchGetProducts), and the fault interceptor matches a call's own method name, so StreamEvents is never delayed or refused; ${connected} of ${total} answers above reported all three streams connected. A fault on StreamEvents (or on every method, \`*\`) would matter only at a (re)connection: the interceptor runs once, when a call starts, so a stream that is already open is not affected; a stream opened under the fault is delayed by the latency or refused with probability q, and retried after the follower's backoff (EVENTS_RECONNECT_MIN 100 ms, growing to EVENTS_RECONNECT_MAX 5 s). That lengthens catch-up after a disconnection, which is staleness, and leaves the latency and availability of EVENTUAL reads as they are; the end of section 6 sets such a fault on products' StreamEvents and shows both halves.`,
      "",
    );
  }
  return out;
}

/** Section 6: staleness of the EVENTUAL view, steadily, while the reader is down, while products is down. */
function stalenessSection(results: ExperimentResults): string[] {
  const { staleness: st, outage } = results;
  const out: string[] = [];
  const row = (label: string, s: Spread, predicted: string) => [label, s.n, ms(s.p50), ms(s.p99), ms(s.max), predicted];
  const underResolution = `below the resolution (${ms(st.resolutionMs)} ms)`;
  out.push(
    "## 6. Staleness: how far behind the EVENTUAL view is",
    "",
    `A writer places ${st.writeRatePerSecond} orders a second for ${st.durationMs / 1000} s (open loop), each with CreateOrder and its customer's own token (${st.customers} customers in turn, two lines per order). From each acknowledgement the customer's EVENTUAL view is polled, in rounds of one GetUserOrders per customer with an order not yet seen, ${st.pollIntervalMs} ms apart, until an answer lists the order. Staleness is the time from the acknowledgement to the arrival of that answer, all on the experiment's one clock. It is an upper bound: the order became visible somewhere after the last poll that did not list it was sent; the median width of that window, ${ms(st.resolutionMs)} ms, is the resolution. Predicted: below the resolution at the median. Nothing on the event path waits on a timer: the commit wakes the outbox's reader within the same turn of orders' event loop, the event goes out on a stream that is already open, and user-orders applies it in the next turn of its own, one SQLite transaction, so it costs about one loopback message and one small write.`,
    "",
  );
  out.push(
    table(
      ["writes", "N", "p50 (ms)", "p99 (ms)", "max (ms)", "predicted"],
      [
        row("orders, steady (before the reader was killed)", st.steady, `p50 ${underResolution}`),
        row("orders, after the reader was back", st.after, `p50 ${underResolution}`),
        row("sign-ups (section 4's run), products up", outage.signUps.outside, `p50 ${underResolution}`),
        row(
          "sign-ups, while products was down",
          outage.signUps.duringOutage,
          "as with products up: the users stream is not involved",
        ),
      ],
    ),
    "",
    `**What it shows.** In steady operation an order appears in the EVENTUAL view ${ms(st.steady.p50)} ms after CreateOrder returned at the median and ${ms(st.steady.p99)} ms at the p99 (N = ${st.steady.n}, worst ${ms(st.steady.max)} ms), with a resolution of ${ms(st.resolutionMs)} ms: a customer who places an order and then looks at their orders will practically always see it, but a view read in the same moment as the write can miss it, which a STRONG view never does. The staleness is the price of not calling users, orders and products on every read; it stays this small only while the streams are connected, as the outages below show (after the reader was back the p99 was ${ms(st.after.p99)} ms).${
      st.writesFailed > 0
        ? ` ${st.writesFailed} writes failed (${Object.entries(st.writeFailures)
            .map(([why, n]) => `${n} × ${why}`)
            .join("; ")}).`
        : ""
    }${st.unseen > 0 ? ` ${st.unseen} acknowledged writes never appeared within 30 s.` : ""}`,
    "",
  );

  const o = st.outage;
  out.push(
    "### The reader down: user-orders killed and restarted",
    "",
    `In the same run, user-orders is killed with SIGKILL at ${(o.killedAtMs / 1000).toFixed(1)} s and started again on its port at ${(o.restartedAtMs / 1000).toFixed(1)} s; it was ready (listening) at ${(o.readyAtMs / 1000).toFixed(1)} s, ${ms(o.readyAtMs - o.restartedAtMs)} ms after the restart began. The writer goes on placing orders throughout (orders does not need user-orders); the projection's database survives, so the restarted process resumes each stream after the last event it had applied. Predicted for a write acknowledged at t while user-orders is down: (ready - t), the rest of the outage plus the restart, plus the catch-up, the replay of the events it missed (about ${Math.round(((o.readyAtMs - o.killedAtMs) / 1000) * st.writeRatePerSecond)} orders, a few milliseconds' work).`,
    "",
    table(
      ["writes acknowledged while user-orders was down or restarting", "N", "min (ms)", "p50 (ms)", "max (ms)"],
      [
        ["staleness measured", o.staleness.n, ms(o.staleness.min), ms(o.staleness.p50), ms(o.staleness.max)],
        [
          "predicted without catch-up: ready - t",
          o.remaining.n,
          ms(o.remaining.min),
          ms(o.remaining.p50),
          ms(o.remaining.max),
        ],
        [
          "difference: measured - (ready - t)",
          o.residual.n,
          ms(o.residual.min),
          ms(o.residual.p50),
          ms(o.residual.max),
        ],
      ],
    ),
    "",
    `**What it shows.** While the reader is down nobody can read any view, STRONG or EVENTUAL; the writes go on, and wait. The writes made during the outage appeared ${ms(o.staleness.min)} to ${ms(o.staleness.max)} ms after they were acknowledged, which is the time left until user-orders was ready again (${ms(o.remaining.min)} to ${ms(o.remaining.max)} ms) plus at most ${ms(o.residual.max)} ms (median ${ms(o.residual.p50)} ms). The first poll answered after ready arrived ${ms(o.firstAnswerMs)} ms after it: it had been sent ${ms(o.firstAnswerSentMs)} ms after ready (the poller's channel reconnecting) and took ${ms(o.firstAnswerMs - o.firstAnswerSentMs)} ms, as the first calls to a freshly started process do (its first token check and queries, with the replay running in the same process). The last of the ${o.staleness.n} writes made before ready was visible ${ms(o.catchUpMs)} ms after it, ${ms(o.catchUpMs - o.firstAnswerMs)} ms after that first answer: a ${((o.readyAtMs - o.killedAtMs) / 1000).toFixed(1)} s gap was caught up within ${ms(o.catchUpMs)} ms of ready${o.catchUpMs < (o.readyAtMs - o.killedAtMs) / 10 ? ", so catching up is not the cost; the outage and the restart are" : ""}. Writes after the restart were back to ${ms(st.after.p50)} ms at the median.`,
    "",
  );

  const down = answerKinds.reduce((sum, k) => sum + outage.eventual.duringOutage[k], 0);
  const strongDown = answerKinds.reduce((sum, k) => sum + outage.duringOutage[k], 0);
  const attempts = outage.orderAttempts;
  const codes = [...new Set(attempts.map((a) => a.code))];
  const back = outage.ordersBack;
  out.push(
    "### A dependency down: products killed and restarted (section 4's run)",
    "",
    `Orders cannot be placed while products is down: orders prices every line from products, and without an answer it refuses the order (UNAVAILABLE) and writes nothing, so there is no order whose staleness could be measured. The write that remains possible is a sign-up, which the users stream carries to the projection; new customers signed up at ${outage.signUps.ratePerSecond} a second through section 4's run, and each one's EVENTUAL view was polled (with an admin token) from the acknowledgement until it stopped answering NOT_FOUND. ${attempts.length} CreateOrder calls were also tried while products was down.`,
    "",
    table(
      ["while products was down", "measured", "predicted"],
      [
        [
          "STRONG views full / degraded / failed",
          `${outage.duringOutage.full} / ${outage.duringOutage.degraded} / ${outage.duringOutage.failed} of ${strongDown}`,
          "all degraded",
        ],
        [
          "EVENTUAL views full / degraded / failed",
          `${outage.eventual.duringOutage.full} / ${outage.eventual.duringOutage.degraded} / ${outage.eventual.duringOutage.failed} of ${down}`,
          "all full",
        ],
        [
          "EVENTUAL p50 / p99 (ms)",
          `${ms(outage.eventual.latencyDuringOutage.p50)} / ${ms(outage.eventual.latencyDuringOutage.p99)}`,
          "as with products up",
        ],
        [
          "sign-up staleness p50 / p99 / max (ms), N",
          `${ms(outage.signUps.duringOutage.p50)} / ${ms(outage.signUps.duringOutage.p99)} / ${ms(outage.signUps.duringOutage.max)}, N = ${outage.signUps.duringOutage.n}`,
          `as with products up (${ms(outage.signUps.outside.p50)} / ${ms(outage.signUps.outside.p99)} / ${ms(outage.signUps.outside.max)}, N = ${outage.signUps.outside.n})`,
        ],
        [
          "CreateOrder while products was down",
          `${attempts.length} tried: ${codes.map((c) => `${attempts.filter((a) => a.code === c).length} ${c}`).join(", ")}`,
          "UNAVAILABLE, nothing written",
        ],
        [
          "orders accepted an order again, after products was ready",
          back === undefined
            ? "–"
            : Number.isNaN(back.afterReadyMs)
              ? `not within 30 s (${back.refused} refused)`
              : `${ms(back.afterReadyMs)} ms (${back.refused} tries refused before, one every 50 ms)`,
          "within orders' reconnect backoff to products (100 ms, growing to at most 1 s)",
        ],
        [
          "products stream reported disconnected, after the kill",
          outage.eventual.productsStreamLostAfterKillMs === undefined
            ? "never"
            : `${ms(outage.eventual.productsStreamLostAfterKillMs)} ms`,
          "at once (the connection breaks)",
        ],
        [
          "products stream reported connected again, after products was ready",
          outage.eventual.productsStreamBackAfterReadyMs === undefined
            ? "not within the run"
            : `${ms(outage.eventual.productsStreamBackAfterReadyMs)} ms`,
          "within the follower's backoff (100 ms doubling, at most 5 s)",
        ],
      ],
    ),
    "",
  );
  const slowSignUps = outage.signUps.points.filter(
    (p) =>
      p.ackAtMs >= outage.killedAtMs &&
      p.ackAtMs < outage.restartReadyAtMs &&
      p.stalenessMs > outage.signUps.outside.p99,
  );
  const duringRestart = slowSignUps.filter((p) => p.ackAtMs >= outage.restartedAtMs).length;
  // Said only when the restart explains part of a slower tail, so that the p99s are not compared blindly.
  const slowSignUpSentence =
    duringRestart === 0
      ? ""
      : ` ${duringRestart} of the ${slowSignUps.length} sign-ups slower than the p99 with products up (${slowSignUps.map((p) => `${ms(p.stalenessMs)} ms`).join(", ")}) were made while products was restarting (${(outage.restartedAtMs / 1000).toFixed(1)} to ${(outage.restartReadyAtMs / 1000).toFixed(1)} s), a process start that takes the two cores for a moment.`;
  const ordersBackSentence =
    back === undefined || back.refused === 0
      ? ""
      : ` Nor does it end when products is back: orders refused ${back.refused} more CreateOrder calls (${back.firstRefusal ?? "–"}) and accepted one only ${Number.isNaN(back.afterReadyMs) ? "after more than 30 s" : `${ms(back.afterReadyMs)} ms after products was ready`}, because its channel to products reconnects only after its backoff (100 ms, growing to at most 1 s).`;
  out.push(
    `**What it shows.** This is where EVENTUAL earns its keep: while products was down ${outage.duringOutage.full === 0 ? "every" : `all but ${outage.duringOutage.full} of the`} STRONG view${outage.duringOutage.full === 0 ? "" : "s"} lost its product details, and ${outage.eventual.duringOutage.full} of ${down} EVENTUAL views were complete (p50 ${ms(outage.eventual.latencyDuringOutage.p50)} ms), because the details were already in the projection. New customers appeared in the projection ${ms(outage.signUps.duringOutage.p50)} ms after signing up at the median, against ${ms(outage.signUps.outside.p50)} ms while products was up: the streams are independent, and only the one from the failed service stops. What cannot happen during the outage is the write that needs products, and for that no consistency level helps.${slowSignUpSentence}${ordersBackSentence}`,
    "",
    `![staleness: distribution and timeline through the reader's outage](${chartFiles.staleness})`,
    "",
  );
  out.push(...streamFaultSection(st));
  return out;
}

/**
 * Part of section 6: one stream held back while another flows. Shows what
 * an EVENTUAL answer looks like when it is incomplete, and whether a
 * StreamEvents fault reaches an open stream.
 */
function streamFaultSection(st: StalenessResult): string[] {
  const { probe, productsConnectedUnderFault } = st.streamFault;
  const o = st.outage;
  const connectedText =
    productsConnectedUnderFault === undefined
      ? "no view answered to tell"
      : productsConnectedUnderFault
        ? "connected"
        : "disconnected";
  const out: string[] = [
    "### One stream held back: an order without its product",
    "",
    `In the same run, products' StreamEvents gets an injected fault (every call refused with UNAVAILABLE) at ${(st.streamFault.setAtMs / 1000).toFixed(1)} s, while the projection's products stream is open, and keeps it through user-orders' outage. Once user-orders is ready again and answers EVENTUAL views promptly (five in a row within 20 ms each), a new product is created and ordered at once; the customer's EVENTUAL view is polled every 2 ms, and ${ms(probe.holdMs)} ms after the order was acknowledged the fault is lifted. Predicted: the open stream is not affected (the fault interceptor runs once, when a call starts); the restarted process's new products stream is refused, and retried after the follower's backoff (100 ms, growing to at most 5 s); the order arrives on the orders stream at the usual staleness, its product only after the fault is lifted and the next retry.`,
    "",
  ];
  if (probe.error !== undefined) {
    out.push(`The probe could not run: ${probe.error}.`, "");
    return out;
  }
  out.push(
    table(
      ["probe", "measured", "predicted"],
      [
        [
          "products stream just before the kill, under the fault",
          connectedText,
          "connected (an open stream is not affected)",
        ],
        [
          "order listed in the EVENTUAL view, after its acknowledgement",
          probe.orderSeenMs === undefined ? "never" : `${ms(probe.orderSeenMs)} ms`,
          `about the steady staleness (p50 ${ms(st.steady.p50)} ms)`,
        ],
        [
          "fault lifted, after the acknowledgement",
          probe.faultLiftedMs === undefined ? "–" : `${ms(probe.faultLiftedMs)} ms`,
          `${ms(probe.holdMs)} ms`,
        ],
        [
          "product details on the line, after the acknowledgement",
          probe.detailsSeenMs === undefined ? "not within 20 s" : `${ms(probe.detailsSeenMs)} ms`,
          "after the fault is lifted, within the follower's backoff (at most 5 s)",
        ],
        [
          "answers listing the order without product details",
          String(probe.incompleteAnswers),
          "every answer until the details arrive",
        ],
        [
          "of those, listing a products degradation (NO_PRODUCT_DETAILS)",
          String(probe.incompleteWithDegradation),
          "all",
        ],
        [
          "of those, reporting the products stream disconnected or behind (applied below head)",
          String(probe.incompleteWithProductsBehind),
          "all",
        ],
        [
          "of those, reporting it disconnected",
          String(probe.incompleteWithProductsDisconnected),
          "those before the fault is lifted; after it, connected and behind until the event is applied",
        ],
      ],
    ),
    "",
    `**What it shows.** An open stream does not meet a StreamEvents fault; a new one does, which is when it matters: after user-orders' restart the users and orders streams caught up at once (every order made during the outage was visible ${ms(o.catchUpMs)} ms after ready), but the products stream stayed refused. An order placed then was listed ${probe.orderSeenMs === undefined ? "never" : `${ms(probe.orderSeenMs)} ms`} after it was acknowledged, and its product's details followed only ${probe.detailsSeenMs === undefined ? "not within 20 s" : `${ms(probe.detailsSeenMs)} ms`} after it, ${probe.detailsSeenMs !== undefined && probe.faultLiftedMs !== undefined ? `${ms(probe.detailsSeenMs - probe.faultLiftedMs)} ms after the fault was lifted` : "after the fault was lifted"}. The ${probe.incompleteAnswers} answers in between had no product details on the line, and ${probe.incompleteAnswers > 0 && probe.incompleteWithDegradation === probe.incompleteAnswers ? "every one" : `${probe.incompleteWithDegradation} of them`} said so the way a STRONG view does, with a products degradation (NO_PRODUCT_DETAILS) naming the stream that is behind; stream_lags reported the products stream disconnected in ${probe.incompleteWithProductsDisconnected} of them and ${probe.incompleteWithProductsBehind === probe.incompleteAnswers ? "behind its source in the rest" : `disconnected or behind in ${probe.incompleteWithProductsBehind}`}. Staleness is not only "a write not there yet": with several streams, one part of a write can arrive before another.`,
    "",
  );
  return out;
}

/** What the hedged rows show, beside the unhedged rows of the same fan-out. */
function hedgingSentence(tail: TailResult): string {
  const parts = tail.rows
    .filter((r) => r.hedged)
    .map((h) => {
      const plain = tail.rows.find((r) => !r.hedged && r.p === h.p && r.shards === h.shards);
      const load =
        h.extraLoad <= 2 * h.predictedExtraLoad
          ? "close to the ~5% the p95 rule predicts"
          : `well above the ~5% the p95 rule predicts`;
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
  const { latency, availability, tail, outage, eventual, staleness } = results;
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
    `eventual: p50 ${ms(eventual.latency.rows[0]?.p50 ?? Number.NaN)} ms, ${ms(eventual.latency.rows.find((r) => r.delayed === "all" && r.delayMs === maxD)?.p50 ?? Number.NaN)} ms with all deps +${maxD} ms; ${eventual.availability.rows.map((r) => `q=${r.q} ${pct(r.kinds.full.measured)} full`).join(", ")}; ${outage.eventual.duringOutage.full} of ${answerKinds.reduce((sum, k) => sum + outage.eventual.duringOutage[k], 0)} full while products was down`,
    `staleness: p50 ${ms(staleness.steady.p50)} ms, p99 ${ms(staleness.steady.p99)} ms, max ${ms(staleness.steady.max)} ms (N ${staleness.steady.n}, resolution ${ms(staleness.resolutionMs)} ms); with user-orders down up to ${ms(staleness.outage.staleness.max)} ms, caught up ${ms(staleness.outage.catchUpMs)} ms after ready`,
    tracesSummary(results.traces),
  ];
}
