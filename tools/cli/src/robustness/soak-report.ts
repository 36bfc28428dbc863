import { type RunMachine, runLine, writeReportFiles } from "../report-files.js";
import { operations, type FaultKind } from "./fault-schedule.js";
import type { WindowSummary } from "./soak-windows.js";

/** Memory of one process over a soak. */
export interface ProcessMemory {
  firstRssMiB: number;
  lastRssMiB: number;
  peakRssMiB: number;
  /** Least-squares slope of RSS over time, from `slopeFromSeconds` on. */
  rssSlopeMiBPerMinute: number;
  lastHeapUsedMiB?: number;
  heapSlopeMiBPerMinute?: number;
  samples: number;
}

/** The lost-write check at the end of a soak. */
export interface WriteCheck {
  acknowledged: number;
  projectionCaughtUp: boolean;
  projectionWaitMs: number;
  missingFromOrders: number;
  missingFromView: number;
  duplicatedInView: number;
  /** Up to ten of the orders behind the counts. */
  examples: string[];
}

/** What soak.json holds. */
export interface SoakReport {
  generatedAt: string;
  command: string;
  machine: RunMachine;
  settings: {
    durationSeconds: number;
    windowSeconds: number;
    rate: number;
    rateFrom: "probe" | "--rate";
    probedCapacity?: number;
    probeSeconds?: number;
    clientDeadlineMs: number;
    products: number;
    customers: number;
  };
  /** The faults as they were really in force (from set to cleared). */
  schedule: { kind: FaultKind; description: string; fromSeconds: number; toSeconds: number }[];
  windows: WindowSummary[];
  totals: {
    calls: number;
    /** Calls due while the client already had its maximum waiting: not sent. */
    skipped: number;
    degraded: number;
    errors: Record<string, number>;
    unexpected: number;
    /** Unexpected failures by "operation CODE". */
    unexpectedByCall: Record<string, number>;
    /** The first message of each, with when it started and how long it took. */
    unexpectedExamples: Record<string, string>;
  };
  memory: Record<string, ProcessMemory>;
  slopeFromSeconds: number;
  writes: WriteCheck;
  /** Acknowledged orders missing from orders or from the EVENTUAL view, plus extra copies in the view. */
  lostWrites: number;
  /** Services that exited during the run. */
  exited: string[];
  verdict: "PASS" | "FAIL";
}

/** Writes soak.json and soak.md into `outDir`; returns their paths. */
export function writeSoakReport(report: SoakReport, outDir: string): { json: string; markdown: string } {
  return writeReportFiles(outDir, "soak", report, renderSoakMarkdown(report));
}

const n = (value: number) => Math.round(value).toLocaleString("en-US");
const f = (value: number | undefined, digits = 1) => (value === undefined ? "–" : value.toFixed(digits));
const codes = (counts: Record<string, number>) =>
  Object.entries(counts)
    .sort(([, a], [, b]) => b - a)
    .map(([code, count]) => `${code} ${n(count)}`)
    .join(", ") || "none";

/** The markdown report. */
export function renderSoakMarkdown(report: SoakReport): string {
  const { settings, totals, writes } = report;
  const services = Object.keys(report.memory);
  const lines: string[] = [
    "# Soak",
    "",
    runLine(report),
    "",
    `**${report.verdict}**: ${n(totals.calls)} calls in ${f(settings.durationSeconds / 60, 1)} min, ` +
      `${n(totals.unexpected)} unexpected errors, ${n(report.lostWrites)} lost writes` +
      (report.exited.length > 0 ? `, and ${report.exited.join(", ")} exited during the run` : "") +
      ".",
    "",
    "## Load",
    "",
    `A mixed open-loop load: every operation drawn in turn by weight (SignIn 10, GetProduct 30, CreateOrder 10, GetUserOrders STRONG 25, EVENTUAL 25 out of 100), ` +
      `${settings.customers} customers, ${settings.products} products, every call with a ${n(settings.clientDeadlineMs)} ms deadline. ` +
      (settings.rateFrom === "probe"
        ? `Rate: ${n(settings.rate)} calls/s, half of the ${n(settings.probedCapacity ?? 0)} calls/s a ${f(settings.probeSeconds, 0)} s closed-loop probe (16 in flight, same mix, no faults) measured.`
        : `Rate: ${n(settings.rate)} calls/s, as given.`) +
      (totals.skipped > 0 ? ` ${n(totals.skipped)} calls were not sent because too many were already waiting.` : ""),
    "",
    "## Faults",
    "",
    "| fault | on (s) | off (s) |",
    "| --- | ---: | ---: |",
    ...report.schedule.map((phase) => `| ${phase.description} | ${f(phase.fromSeconds)} | ${f(phase.toSeconds)} |`),
    "",
    "An error is expected only when a fault in force while the call ran explains it: UNAVAILABLE from SignIn while users fails calls; " +
      "DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED from GetProduct, and UNAVAILABLE or DEADLINE_EXCEEDED from CreateOrder, while products hangs. " +
      "Anything else is unexpected, INTERNAL and UNKNOWN always.",
    "",
    `## Per window (${f(settings.windowSeconds, 0)} s)`,
    "",
    `| window (s) | calls | calls/s | errors | unexpected | degraded STRONG | p50 ms | p99 ms | faults | ${services.map((s) => `${s} RSS / heap MiB`).join(" | ")} |`,
    `| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | ${services.map(() => "---:").join(" | ")} |`,
    ...report.windows.map(
      (w) =>
        `| ${f(w.fromSeconds, 0)}-${f(w.toSeconds, 0)} | ${n(w.calls)} | ${f(w.callsPerSecond)} | ${codes(w.errors)} | ${n(w.unexpected)} | ${n(w.degraded)} | ${f(w.p50Ms, 2)} | ${f(w.p99Ms, 2)} | ${w.faults.join(", ") || "none"} | ` +
        services
          .map(
            (s) =>
              `${f(w.memory[s as keyof typeof w.memory]?.rssMiB)} / ${f(w.memory[s as keyof typeof w.memory]?.heapUsedMiB)}`,
          )
          .join(" | ") +
        " |",
    ),
    "",
    "p50 and p99 cover every call that ended in the window, failed ones too (a hung call counts with the time it waited).",
    "",
    "## By operation, whole run",
    "",
    "| operation | calls | errors | p99 of the worst window, ms |",
    "| --- | ---: | ---: | ---: |",
    ...operations.map((operation) => {
      const calls = report.windows.reduce((sum, w) => sum + w.byOperation[operation].calls, 0);
      const errors = report.windows.reduce((sum, w) => sum + w.byOperation[operation].errors, 0);
      const worst = Math.max(0, ...report.windows.map((w) => w.byOperation[operation].p99Ms));
      return `| ${operation} | ${n(calls)} | ${n(errors)} | ${f(worst, 2)} |`;
    }),
    "",
    `Errors over the run: ${codes(totals.errors)}. Unexpected: ${codes(totals.unexpectedByCall)}.`,
    ...Object.entries(totals.unexpectedExamples).map(([call, example]) => `\n- first unexpected ${call}: ${example}`),
    "",
    "## Memory per process",
    "",
    `RSS from /proc, sampled every second; heap in use as each process reports it (process.memoryUsage, through a preload). ` +
      `Slopes are least-squares lines through the samples from ${f(report.slopeFromSeconds, 0)} s on (the first window, start-up and warm-up, left out when there is more than one).`,
    "",
    "| process | RSS first MiB | RSS last MiB | RSS peak MiB | RSS slope MiB/min | heap last MiB | heap slope MiB/min |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...Object.entries(report.memory).map(
      ([service, m]) =>
        `| ${service} | ${f(m.firstRssMiB)} | ${f(m.lastRssMiB)} | ${f(m.peakRssMiB)} | ${f(m.rssSlopeMiBPerMinute, 2)} | ${f(m.lastHeapUsedMiB)} | ${f(m.heapSlopeMiBPerMinute, 2)} |`,
    ),
    "",
    "## Writes",
    "",
    `${n(writes.acknowledged)} CreateOrder calls were acknowledged. At the end, with every fault off, ` +
      `${writes.projectionCaughtUp ? `user-orders' projection reached every source's head in ${n(writes.projectionWaitMs)} ms` : "user-orders' projection did NOT reach every source's head within 60 s"}; ` +
      `${n(writes.missingFromOrders)} acknowledged orders were missing from ListOrders, ${n(writes.missingFromView)} from their customer's EVENTUAL view, ` +
      `and ${n(writes.duplicatedInView)} extra copies were in the views.` +
      (writes.examples.length > 0 ? `\n\n${writes.examples.map((example) => `- ${example}`).join("\n")}` : ""),
    "",
  ];
  return lines.join("\n");
}
