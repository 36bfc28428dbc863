import { writeReportFiles } from "../report-files.js";
import type { BenchReport, StepResult, TargetCheck } from "./bench-results.js";
import { fmt, pct } from "./target-checks.js";

const ms = (value: number) => fmt(value, value < 10 ? 2 : 1);

/** Writes bench.json and bench.md into `outDir`; returns their paths. */
export function writeReport(report: BenchReport, outDir: string): { json: string; markdown: string } {
  return writeReportFiles(outDir, "bench", report, renderMarkdown(report));
}

function table(header: string[], rows: string[][], right: boolean[]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(right.map((r) => (r ? "---:" : "---"))), ...rows.map(line)].join("\n");
}

function verdict(check: TargetCheck): string {
  return check.pass ? "PASS" : "SHORT";
}

function describeCheck(check: TargetCheck): string {
  switch (check.unit) {
    case "share of baseline calls/s":
      return `${pct(check.measured)} of baseline (target ≥ ${pct(check.target)})`;
    case "multiple of baseline peak RSS":
      return `${fmt(check.measured, 2)}x baseline (target ≤ ${fmt(check.target, 2)}x)`;
    case "µs of server CPU per call":
      return `${fmt(check.measured)} µs (target ≤ ${fmt(check.target)} µs)`;
    case "multiple of the dependencies' CPU":
      return `${fmt(check.measured, 2)}x theirs (target ≤ ${fmt(check.target, 2)}x)`;
  }
}

/** Which process answers each directly loaded read, to set beside its share of a view. */
const directReads: Partial<Record<string, StepResult["target"]>> = {
  users: "users.GetUser",
  orders: "orders.ListOrders",
};

/**
 * For a target served by several processes: where its CPU went, what the
 * same downstream calls cost when the bench loads them directly, and the
 * most calls/s the machine's cores could give at that CPU per call.
 */
function cpuAccount(top: StepResult, report: BenchReport): string[] {
  const byProcess = Object.entries(top.serverCpuMicrosPerCallByProcess) as [string, number][];
  if (byProcess.length < 2 || top.serverCpuMicrosPerCall === null) return [];
  const sentences = [`By process: ${byProcess.map(([name, micros]) => `${name} ${fmt(micros)} µs`).join(", ")}.`];
  const direct = byProcess.flatMap(([name, micros]) => {
    const key = directReads[name];
    const alone = report.steps.find((step) => step.target === key && step.concurrency === top.concurrency);
    const cpu = alone?.serverCpuMicrosPerCallByProcess[name as keyof StepResult["serverCpuMicrosPerCallByProcess"]];
    return key && cpu !== undefined ? [`${key} ${fmt(cpu)} µs (${fmt(micros)} µs as part of this call)`] : [];
  });
  if (direct.length > 0) {
    sentences.push(
      `Loaded directly by the bench at ${top.concurrency} in flight (over its own connections, where user-orders uses one channel per dependency), the same downstream calls cost ${direct.join(", ")}.`,
    );
  }
  const total = top.serverCpuMicrosPerCall + top.clientCpuMicrosPerCall;
  const baseline = report.steps.find((step) => step.target === top.baseline && step.concurrency === top.concurrency);
  const ceiling = (report.machine.cpus * 1_000_000) / total;
  sentences.push(
    `With the bench client's share, each call took ${fmt(total)} µs of CPU in all; ${report.machine.cpus} cores busy all the time would then give at most ${fmt(ceiling)} calls/s` +
      (baseline && baseline.callsPerSecond > 0
        ? `, ${pct(ceiling / baseline.callsPerSecond)} of the baseline's rate.`
        : "."),
  );
  return sentences;
}

function stepParagraph(title: string, steps: StepResult[], isBaseline: boolean, report: BenchReport): string {
  const top = steps[steps.length - 1]!;
  const first = steps[0]!;
  const sentences: string[] = [];
  if (isBaseline) {
    sentences.push(
      `The bare grpc-js server answers an empty call with nothing but grpc-js's own work, so these are the most calls per second this client and this machine can push through one server process.`,
      `At ${top.concurrency} in flight it did ${fmt(top.callsPerSecond)} calls/s with a median of ${ms(top.latencyMs.p50)} ms; the other tables are read against this one, or against its TLS port's, at the same concurrency.`,
    );
  } else {
    sentences.push(
      `At ${top.concurrency} in flight ${title} did ${fmt(top.callsPerSecond)} calls/s, ${pct(top.ratioToBaseline)} of the bare server's rate${top.baseline === "bare.tls" ? " over TLS" : ""}; half its calls took under ${ms(top.latencyMs.p50)} ms and one in a thousand took over ${ms(top.latencyMs.p999)} ms.`,
    );
    if (steps.length > 1) {
      sentences.push(
        `With ${first.concurrency} in flight a call took ${ms(first.latencyMs.p50)} ms at the median (${pct(first.ratioToBaseline)} of the baseline's rate at that level).`,
      );
    }
  }
  const cpu = top.serverCpuMicrosPerCall;
  if (cpu !== null) {
    sentences.push(
      `Server CPU per call at ${top.concurrency} in flight: ${fmt(cpu)} µs${isBaseline ? "" : " (summed over every process that takes part)"}; the bench client spent ${fmt(top.clientCpuMicrosPerCall)} µs per call.`,
    );
    sentences.push(...cpuAccount(top, report));
  }
  const plain = report.steps.find((step) => step.target === "bare" && step.concurrency === top.concurrency);
  if (top.target === "bare.tls" && cpu !== null && plain?.serverCpuMicrosPerCall != null) {
    sentences.push(
      `TLS is the only difference from the bare server's plaintext port in the same process: it adds ${fmt(cpu - plain.serverCpuMicrosPerCall)} µs of server CPU and ${fmt(top.clientCpuMicrosPerCall - plain.clientCpuMicrosPerCall)} µs of client CPU per call at ${top.concurrency} in flight (connections stay open, so this is the per-message cost of encryption, not handshakes).`,
      `The services speak TLS, so their rows are read against this one; GetProduct without TLS is read against the plaintext row.`,
    );
  }
  sentences.push(...variantComparison(top, report));
  const errors = steps.reduce((sum, step) => sum + step.errors, 0);
  const degraded = steps.reduce((sum, step) => sum + step.degraded, 0);
  if (errors > 0)
    sentences.push(
      `${fmt(errors)} calls failed (first: ${steps.find((step) => step.firstError)?.firstError ?? "?"}); they are not in the latencies.`,
    );
  if (degraded > 0) sentences.push(`${fmt(degraded)} answers came back degraded (a fallback was used).`);
  return sentences.join(" ");
}

/** What each products variant changes from the mesh's products process, as the report says it. */
const variantChanges: Partial<Record<StepResult["target"], string>> = {
  "products.GetProduct.plaintext": "serves plaintext instead of TLS",
  "products.GetProduct.lean": "records no metrics (METRICS_PORT=off)",
  "products.GetProduct.traced":
    "records a span for every call and exports them over OTLP/HTTP to a collector stand-in in its own process",
};

/** `part` against `whole`: calls/s as a share, and server CPU per call as a difference. */
function against(part: StepResult, whole: StepResult): string {
  const share = pct(whole.callsPerSecond > 0 ? part.callsPerSecond / whole.callsPerSecond : 0);
  if (part.serverCpuMicrosPerCall === null || whole.serverCpuMicrosPerCall === null) return `${share} of its calls/s`;
  const difference = part.serverCpuMicrosPerCall - whole.serverCpuMicrosPerCall;
  return `${share} of its calls/s, with ${difference >= 0 ? "+" : ""}${fmt(difference)} µs of server CPU per call (${fmt(part.serverCpuMicrosPerCall)} µs against ${fmt(whole.serverCpuMicrosPerCall)} µs)`;
}

/**
 * For a products variant: what its one change costs, against the control
 * (a second products process with nothing changed) in the same run at the
 * same concurrency; for the control, how far it is from the mesh's own
 * products process, which is the noise such a comparison carries.
 */
function variantComparison(top: StepResult, report: BenchReport): string[] {
  const at = (target: StepResult["target"]) =>
    report.steps.find((step) => step.target === target && step.concurrency === top.concurrency);
  if (top.target === "products.GetProduct.control") {
    const main = at("products.GetProduct");
    if (main === undefined) return [];
    return [
      `This is a second products process, started like the variants below and changed in nothing: each of them is read against it.`,
      `Against the mesh's own products process at ${top.concurrency} in flight in the same run it did ${against(top, main)}: two processes that should measure the same differ this much here, and a variant's difference from the control means something only where it is larger.`,
    ];
  }
  const change = variantChanges[top.target];
  const control = at("products.GetProduct.control");
  if (change === undefined || control === undefined) return [];
  const sentences = [
    `This process is products with one difference: it ${change}.`,
    `Against the control (a second products process with nothing changed) at ${top.concurrency} in flight in the same run it did ${against(top, control)}.`,
  ];
  if (top.target === "products.GetProduct.traced" && report.otlpExport !== undefined) {
    sentences.push(
      `Over the whole run the collector stand-in received ${fmt(report.otlpExport.exports)} exports, ${fmt(report.otlpExport.bytes / (1024 * 1024), 1)} MiB of spans.`,
    );
  }
  return sentences;
}

/** Each read on shopmesh and the same read on the connect-node stack. */
const connectNodePairs: [StepResult["target"], StepResult["target"]][] = [
  ["users.GetUser", "users.GetUser.connect-node"],
  ["products.GetProduct", "products.GetProduct.connect-node"],
  ["orders.ListOrders", "orders.ListOrders.connect-node"],
  ["user-orders.GetUserOrders", "user-orders.GetUserOrders.connect-node"],
];

/** shopmesh's rows at each level beside the same reads on the connect-node stack, as multiples of them. */
function connectNodeRows(report: BenchReport): { concurrency: number; ours: StepResult; theirs: StepResult }[] {
  return report.settings.concurrency.flatMap((concurrency) =>
    connectNodePairs.flatMap(([ourKey, theirKey]) => {
      const find = (key: StepResult["target"]) =>
        report.steps.find((step) => step.target === key && step.concurrency === concurrency);
      const ours = find(ourKey);
      const theirs = find(theirKey);
      return ours === undefined || theirs === undefined ? [] : [{ concurrency, ours, theirs }];
    }),
  );
}

const times = (ratio: number) => `${fmt(ratio, 2)}x`;

function connectNodeSection(report: BenchReport): string[] {
  const rows = connectNodeRows(report);
  if (rows.length === 0) return [];
  const cpu = (step: StepResult) => step.serverCpuMicrosPerCall;
  const top = Math.max(...rows.map((row) => row.concurrency));
  const atTop = rows.filter((row) => row.concurrency === top);
  return [
    "## Against the connect-node stack",
    "",
    `What a connect-es user would build instead: the same four services, with the same handlers, interceptors, admission and databases, each serving its gRPC port with connect-node's adapter on node:http2 (\`GRPC_SERVER=connect-node\`), user-orders calling the other three with connect-node's gRPC client (\`DEPENDENCY_CLIENT=connect-node\`), and the bench calling them with connect-node's client as well. Both stacks run side by side in the same run, their slices interleaved. shopmesh's figures are given as multiples of connect-node's: above 1x for calls/s and below 1x for CPU per call are in shopmesh's favour.`,
    "",
    table(
      [
        "read",
        "in flight",
        "shopmesh calls/s",
        "connect-node calls/s",
        "calls/s, shopmesh as a multiple",
        "server CPU µs/call, shopmesh",
        "connect-node",
        "multiple",
        "client CPU µs/call, shopmesh",
        "connect-node",
      ],
      rows.map(({ concurrency, ours, theirs }) => [
        ours.title,
        String(concurrency),
        fmt(ours.callsPerSecond),
        fmt(theirs.callsPerSecond),
        times(theirs.callsPerSecond > 0 ? ours.callsPerSecond / theirs.callsPerSecond : 0),
        cpu(ours) === null ? "-" : fmt(cpu(ours)!),
        cpu(theirs) === null ? "-" : fmt(cpu(theirs)!),
        cpu(ours) === null || cpu(theirs) === null ? "-" : times(cpu(ours)! / cpu(theirs)!),
        fmt(ours.clientCpuMicrosPerCall),
        fmt(theirs.clientCpuMicrosPerCall),
      ]),
      [false, true, true, true, true, true, true, true, true, true],
    ),
    "",
    `At ${top} in flight shopmesh did ${atTop.map(({ ours, theirs }) => `${times(ours.callsPerSecond / theirs.callsPerSecond)} connect-node's calls/s on ${ours.title}`).join(", ")}.`,
    "",
  ];
}

/** The services' node flags as the report names them. */
function flagsText(flags: readonly string[]): string {
  return flags.length === 0 ? "none" : `\`${flags.join(" ")}\``;
}

/** The rows measured on both Node.js releases at the level the second was measured at. */
function nodeSection(report: BenchReport): string[] {
  const other = report.otherNode;
  if (other === undefined || other.steps.length === 0) return [];
  const level = other.steps[0]!.concurrency;
  const rows = other.steps.flatMap((theirs) => {
    const ours = report.steps.find((step) => step.target === theirs.target && step.concurrency === level);
    return ours === undefined ? [] : [{ ours, theirs }];
  });
  const here = report.machine.node;
  const cpu = (step: StepResult) => (step.serverCpuMicrosPerCall === null ? "-" : fmt(step.serverCpuMicrosPerCall));
  const rssRows = other.rss.flatMap((theirs) => {
    const ours = report.rss.find((row) => row.process === theirs.process);
    return ours === undefined ? [] : [{ ours, theirs }];
  });
  return [
    `## Node.js ${here} and ${other.node} side by side`,
    "",
    `After the levels above, every server process (the four services and the bare baseline) was started again on Node.js ${other.node}, with better-sqlite3's addon built for it and the services' flags for that release (${flagsText(other.serviceNodeFlags)}), on fresh data seeded the same way, and the same rows were measured at ${level} in flight; the bench client stayed on Node.js ${here}. Each release's rows are read against its own bare server, so the shares compare across releases where the raw calls/s carry whatever the machine did between the two halves (they ran one after the other, not interleaved).`,
    "",
    table(
      [
        "row",
        `calls/s, ${here}`,
        "vs its bare",
        "server CPU µs/call",
        `calls/s, ${other.node}`,
        "vs its bare",
        "server CPU µs/call",
      ],
      rows.map(({ ours, theirs }) => [
        ours.title,
        fmt(ours.callsPerSecond),
        pct(ours.ratioToBaseline),
        cpu(ours),
        fmt(theirs.callsPerSecond),
        pct(theirs.ratioToBaseline),
        cpu(theirs),
      ]),
      [false, true, true, true, true, true, true],
    ),
    "",
    table(
      ["process", `peak RSS MiB, ${here}`, "vs its bare", `peak RSS MiB, ${other.node}`, "vs its bare"],
      rssRows.map(({ ours, theirs }) => [
        ours.process,
        fmt(ours.peakMiB),
        `${fmt(ours.ratioToBaseline, 2)}x`,
        fmt(theirs.peakMiB),
        `${fmt(theirs.ratioToBaseline, 2)}x`,
      ]),
      [false, true, true, true, true],
    ),
    "",
    `### Targets on Node.js ${other.node}`,
    "",
    `The same targets, read from the rows above that ran on Node.js ${other.node}, each against its own bare server. The bench client stayed on Node.js ${here}, so the aggregator's check gives the ratio of its calls alone only when the two are the same release.`,
    "",
    ...targetsTable(other.checks),
  ];
}

/** The targets as a table with their verdicts, and which fall short. */
function targetsTable(checks: TargetCheck[]): string[] {
  return [
    table(
      ["target", "measured", "verdict", "detail"],
      checks.map((check) => [check.name, describeCheck(check), verdict(check), check.detail]),
      [false, false, false, false],
    ),
    "",
    checks.every((check) => check.pass)
      ? "Every target is met."
      : `Short of target: ${checks
          .filter((check) => !check.pass)
          .map((check) => check.name)
          .join("; ")}.`,
    "",
  ];
}

/** The markdown report. */
export function renderMarkdown(report: BenchReport): string {
  const out: string[] = [];
  const m = report.machine;
  const s = report.settings;
  out.push(
    "# shopmesh bench",
    "",
    `Generated ${report.generatedAt} by \`${report.command}\`.`,
    "",
    `Machine: ${m.cpus} × ${m.cpuModel}, ${fmt(m.totalMemoryGiB, 1)} GiB memory, ${m.platform} ${m.release}, Node.js ${m.node}.`,
    "",
    `Closed loop: each concurrency level keeps that many calls in flight from one client process (the SDK's grpc-js transport) while the servers run in their own processes; a call refused for overload (RESOURCE_EXHAUSTED with \`grpc-retry-pushback-ms\`) is followed by a pause as long as its pushback, as the SDK's callers are asked to, and counted as failed. ` +
      `Each target's calls are spread over ${s.connections} HTTP/2 connection${s.connections === 1 ? "" : "s"}, taken in turn, as from that many separate callers. ` +
      `Per level every target gets ${fmt(s.warmupSeconds, 1)} s of warm-up, then ${fmt(s.durationSeconds, 1)} s of measurement taken in slices of at most ${fmt(s.sliceSeconds, 1)} s, ` +
      `interleaved with the other targets in a rotating order, so a change in the machine's load falls on all of them alike. ` +
      `Latencies are recorded in an HdrHistogram (µs resolution, 3 significant digits). ` +
      `Data: ${report.seeded.products} products and ${report.seeded.orders} orders of ${report.seeded.linesPerOrder} lines for one customer, whose token every call carries.` +
      (s.quick ? " **Quick mode: a smoke test, the figures are not a measurement.**" : ""),
    "",
    "## Targets",
    "",
    `Read on the rows above, with every server on Node.js ${m.node}${report.otherNode === undefined ? "" : ` (for Node.js ${report.otherNode.node}, see the side-by-side section below)`}.`,
    "",
    ...targetsTable(report.checks),
    ...connectNodeSection(report),
  );
  const keys = [...new Set(report.steps.map((step) => step.target))];
  for (const key of keys) {
    const steps = report.steps.filter((step) => step.target === key).sort((a, b) => a.concurrency - b.concurrency);
    const title = steps[0]!.title;
    out.push(
      `## ${title}`,
      "",
      table(
        [
          "in flight",
          "calls/s",
          "p50 ms",
          "p90 ms",
          "p99 ms",
          "p99.9 ms",
          "vs baseline",
          "server CPU µs/call",
          "errors",
        ],
        steps.map((step) => [
          String(step.concurrency),
          fmt(step.callsPerSecond),
          ms(step.latencyMs.p50),
          ms(step.latencyMs.p90),
          ms(step.latencyMs.p99),
          ms(step.latencyMs.p999),
          pct(step.ratioToBaseline),
          step.serverCpuMicrosPerCall === null ? "-" : fmt(step.serverCpuMicrosPerCall),
          fmt(step.errors),
        ]),
        [true, true, true, true, true, true, true, true, true],
      ),
      "",
      stepParagraph(title, steps, key === "bare", report),
      "",
    );
  }
  out.push(
    "## Memory (RSS)",
    "",
    table(
      ["process", "RSS before load MiB", "peak RSS under load MiB", "vs bare server"],
      report.rss.map((row) => [row.process, fmt(row.startMiB), fmt(row.peakMiB), `${fmt(row.ratioToBaseline, 2)}x`]),
      [false, true, true, true],
    ),
    "",
    `Resident memory of each process, read from /proc/<pid>/status (VmRSS) every 100 ms for the whole load; "before load" is after start-up and seeding. ` +
      `Every process runs under \`node --import tsx\`, the bare server included, so the loader's share is the same on both sides of the ratio. ` +
      `The bare server runs with Node's default heap settings; the services with the flags every local mesh gives them on this Node.js (${flagsText(report.settings.serviceNodeFlags)}), which is part of what the ratio measures. ` +
      `The target is every service's peak within 1.3 times the bare server's; the products variants and the connect-node stack are listed but are not the mesh.`,
    "",
    ...nodeSection(report),
  );
  return `${out.join("\n")}`;
}

/** The short summary printed to the terminal. */
export function renderSummary(report: BenchReport, paths: { json: string; markdown: string }): string {
  const lines: string[] = [];
  const levels = report.settings.concurrency;
  const top = Math.max(...levels);
  lines.push(`calls/s at ${top} in flight (share of the bare grpc-js baseline over the same transport), p99:`);
  for (const step of report.steps.filter((candidate) => candidate.concurrency === top)) {
    lines.push(
      `  ${step.title.padEnd(44)} ${fmt(step.callsPerSecond).padStart(8)}  ${pct(step.ratioToBaseline).padStart(8)}  p99 ${ms(step.latencyMs.p99)} ms${step.errors > 0 ? `  ${fmt(step.errors)} errors` : ""}`,
    );
  }
  const againstConnectNode = connectNodeRows(report).filter((row) => row.concurrency === top);
  if (againstConnectNode.length > 0)
    lines.push(
      `against the connect-node stack at ${top} in flight: ${againstConnectNode.map(({ ours, theirs }) => `${ours.title} ${times(ours.callsPerSecond / theirs.callsPerSecond)}`).join(", ")} its calls/s`,
    );
  lines.push(
    `peak RSS: ${report.rss.map((row) => `${row.process} ${fmt(row.peakMiB)} MiB (${fmt(row.ratioToBaseline, 2)}x)`).join(", ")}`,
  );
  const other = report.otherNode;
  if (other !== undefined)
    lines.push(
      `on Node.js ${other.node} at ${other.steps[0]?.concurrency ?? "?"} in flight: ${other.steps
        .filter((step) => step.target !== "bare" && step.target !== "bare.tls")
        .map((step) => `${step.title} ${pct(step.ratioToBaseline)}`)
        .join(", ")} of its bare server`,
    );
  const verdictLines = (checks: TargetCheck[]) =>
    checks.map((check) => `  ${verdict(check).padEnd(5)}  ${check.name}: ${describeCheck(check)}`);
  lines.push("targets:", ...verdictLines(report.checks));
  if (other !== undefined) lines.push(`targets on Node.js ${other.node}:`, ...verdictLines(other.checks));
  lines.push(`report: ${paths.markdown}`, `        ${paths.json}`);
  return `${lines.join("\n")}\n`;
}
