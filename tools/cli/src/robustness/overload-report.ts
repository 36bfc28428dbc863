import { type RunMachine, runLine, writeReportFiles } from "../report-files.js";

/** A latency spread, in ms. */
export interface Spread {
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** What overload.json holds. */
export interface OverloadReport {
  generatedAt: string;
  command: string;
  machine: RunMachine;
  settings: {
    seconds: number;
    concurrency: number;
    /** Processes the load came from. */
    clients: number;
    /** The deadline each view was sent with; undefined: none. */
    deadlineMs: number | undefined;
    /** What a refused caller did before its next call (see ViewLoadSettings.afterRefusal). */
    afterRefusal: "pushback" | "at-once" | number;
    /** What a view may take: its deadline, or user-orders' default budget. */
    budgetMs: number;
    env: Record<string, string>;
    healthIntervalMs: number;
  };
  elapsedSeconds: number;
  calls: number;
  answered: Spread & {
    count: number;
    perSecond: number /** Share answered within the budget + 50 ms. */;
    withinBudgetPlus50: number;
  };
  refused: Spread & { count: number /** Share refused within 10 ms. */; within10Ms: number };
  /** user-orders' own account of its OK views, from its rpc_server_duration_seconds histogram. */
  serverAnswered?: { answered: number; boundMs: number; withinBound: number; slowestBoundMs: number };
  /** user-orders' garbage-collection pauses over the run: the longest, and how many were over 10 ms. */
  gcPauses?: { maxMs: number; over10Ms: number };
  /** Every status other than OK and RESOURCE_EXHAUSTED, by count. */
  otherCodes: Record<string, number>;
  otherLatency: Record<string, Spread>;
  /** The first message of each failing status. */
  messages: Record<string, string>;
  /** The pushback (grpc-retry-pushback-ms) the refusals carried, ms; count: refusals that had one. */
  pushback?: Spread & { count: number };
  /** Event-loop delay of the load processes themselves (the worst of them): how much of the calls' latency is the client's own. */
  clientLoopDelay: { p50Ms: number; p99Ms: number; maxMs: number };
  health: (Spread & {
    service: string;
    checks: number;
    serving: number;
    notServing: number;
    failures: Record<string, number>;
  })[];
  exited: string[];
  /** Per service, how soon after arriving it refused calls, measured in the server (RefusalTimes' buckets). */
  serverRefusals?: Record<
    string,
    { refused: number; p50Ms: number; p99Ms: number; maxMs: number; within10Ms: number; meanHoldMs: number }
  >;
}

export function writeOverloadReport(report: OverloadReport, outDir: string): { json: string; markdown: string } {
  return writeReportFiles(outDir, "overload", report, renderOverloadMarkdown(report));
}

const n = (value: number) => Math.round(value).toLocaleString("en-US");
const ms = (value: number) => (value >= 100 ? n(value) : value.toFixed(1));
const pct = (share: number) => `${(share * 100).toFixed(1)} %`;

function serverRefusalLines(report: OverloadReport): string[] {
  const entries = Object.entries(report.serverRefusals ?? {});
  if (entries.length === 0) return [];
  const bound = (value: number | null) => (value === null || !Number.isFinite(value) ? "> 1,000" : `≤ ${ms(value)}`);
  return [
    "## Refusals in the servers",
    "",
    "| service | refused | p50 ms | p99 ms | max ms | within 10 ms | mean slot hold ms |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...entries.map(
      ([service, r]) =>
        `| ${service} | ${n(r.refused)} | ${bound(r.p50Ms)} | ${bound(r.p99Ms)} | ${ms(r.maxMs)} | ${pct(r.within10Ms)} | ${ms(r.meanHoldMs)} |`,
    ),
    "",
    "Measured by each server from the moment grpc-js handed it the call's headers to the refusal, in buckets (0.5, 1, 2, 5, 10, 25 ... 1,000 ms): the difference from the client's figure above is time on the connections and in both processes' event-loop queues. Calls to the services behind user-orders come from user-orders itself.",
    "",
    ...(report.gcPauses === undefined
      ? []
      : [
          `user-orders' longest garbage-collection pause in the run was ${ms(report.gcPauses.maxMs)} ms, and ${n(report.gcPauses.over10Ms)} paused it for more than 10 ms: a refusal is decided in the same turn of the event loop as the call's arrival, so only a pause within that turn can make one take longer: a garbage collection, or the process waiting for a core while the load, the health checks and the other services use the machine's ${report.machine.cpus} CPUs.`,
          "",
        ]),
  ];
}

export function renderOverloadMarkdown(report: OverloadReport): string {
  const { settings, answered, refused } = report;
  const others = Object.entries(report.otherCodes).sort(([, a], [, b]) => b - a);
  const internal = report.otherCodes.INTERNAL ?? 0;
  return [
    "# Overload",
    "",
    runLine(report),
    "",
    `${n(settings.concurrency)} STRONG GetUserOrders views (20 orders of 2-3 lines each) kept in flight for ${settings.seconds} s by ${settings.clients} client processes with 2 HTTP/2 connections each, ` +
      `${settings.deadlineMs === undefined ? `with no deadline, so user-orders' default budget of ${n(settings.budgetMs)} ms applies` : `each with a ${n(settings.deadlineMs)} ms deadline`}; ` +
      (settings.afterRefusal === "pushback"
        ? "a caller sends its next call as soon as one is answered, and after a refusal waits as long as the refusal's pushback (`grpc-retry-pushback-ms`) says; "
        : settings.afterRefusal === "at-once"
          ? "a caller sends its next call as soon as one ends, refused or not, ignoring the pushback (a retry storm); "
          : `a caller refused pauses ${n(settings.afterRefusal)} ms (±50 %) before its next call, ignoring the pushback; `) +
      `grpc.health.v1 Check on every service every ${settings.healthIntervalMs} ms on connections of its own.` +
      (Object.keys(settings.env).length > 0
        ? ` Every service ran with ${Object.entries(settings.env)
            .map(([k, v]) => `\`${k}=${v}\``)
            .join(", ")}.`
        : ""),
    "",
    `**${n(report.calls)} calls in ${report.elapsedSeconds.toFixed(1)} s: ${n(answered.count)} answered, ${n(refused.count)} refused, ${n(others.reduce((sum, [, c]) => sum + c, 0))} other; INTERNAL ${n(internal)}.**` +
      (report.exited.length > 0 ? ` **${report.exited.join(", ")} exited during the run.**` : ""),
    "",
    "## Calls",
    "",
    "| outcome | calls | per second | p50 ms | p90 ms | p99 ms | max ms | share |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    `| answered (OK) | ${n(answered.count)} | ${answered.perSecond.toFixed(1)} | ${ms(answered.p50Ms)} | ${ms(answered.p90Ms)} | ${ms(answered.p99Ms)} | ${ms(answered.maxMs)} | ${answered.count === 0 ? "–" : `${pct(answered.withinBudgetPlus50)} within the budget + 50 ms (${n(settings.budgetMs + 50)} ms)`} |`,
    `| refused (RESOURCE_EXHAUSTED) | ${n(refused.count)} | ${(refused.count / report.elapsedSeconds).toFixed(1)} | ${ms(refused.p50Ms)} | ${ms(refused.p90Ms)} | ${ms(refused.p99Ms)} | ${ms(refused.maxMs)} | ${refused.count === 0 ? "–" : `${pct(refused.within10Ms)} within 10 ms`} |`,
    ...others.map(([code, count]) => {
      const spread = report.otherLatency[code]!;
      return `| ${code} | ${n(count)} | ${(count / report.elapsedSeconds).toFixed(1)} | ${ms(spread.p50Ms)} | ${ms(spread.p90Ms)} | ${ms(spread.p99Ms)} | ${ms(spread.maxMs)} | ${pct(count / Math.max(1, report.calls))} of calls |`;
    }),
    "",
    ...(report.serverAnswered === undefined
      ? []
      : [
          `In user-orders itself (its \`rpc_server_duration_seconds\` histogram, from the call's arrival to its status): ${n(report.serverAnswered.answered)} views answered OK, ${pct(report.serverAnswered.withinBound)} within ${n(report.serverAnswered.boundMs)} ms, every one within ${Number.isFinite(report.serverAnswered.slowestBoundMs) ? `${n(report.serverAnswered.slowestBoundMs)} ms` : "the histogram's last bound"} (its buckets: ... 250, 500, 1,000, 2,500 ms).`,
          "",
        ]),
    "Latency is measured by the client, from the call's start to its answer, so it includes the time a call waited in the client and on the connections. " +
      "ABANDONED: still unanswered 30 s after the load's end, given up by the client. " +
      `The busiest load process's own event loop was late by ${ms(report.clientLoopDelay.p50Ms)} ms at the median, ${ms(report.clientLoopDelay.p99Ms)} ms at p99 and ${ms(report.clientLoopDelay.maxMs)} ms at most: that much of any latency above can be the client's.`,
    "",
    ...Object.entries(report.messages).map(([code, message]) => `- first ${code}: ${message}`),
    ...(report.pushback && report.pushback.count > 0
      ? [
          `- pushback carried by ${n(report.pushback.count)} refusals: p50 ${ms(report.pushback.p50Ms)} ms, p90 ${ms(report.pushback.p90Ms)} ms, p99 ${ms(report.pushback.p99Ms)} ms, max ${ms(report.pushback.maxMs)} ms`,
        ]
      : []),
    "",
    ...serverRefusalLines(report),
    "## Health",
    "",
    "| service | checks | SERVING | NOT_SERVING | failed | p50 ms | p99 ms | max ms |",
    "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ...report.health.map(
      (h) =>
        `| ${h.service} | ${n(h.checks)} | ${n(h.serving)} | ${n(h.notServing)} | ${
          Object.entries(h.failures)
            .map(([code, c]) => `${code} ${n(c)}`)
            .join(", ") || "0"
        } | ${ms(h.p50Ms)} | ${ms(h.p99Ms)} | ${ms(h.maxMs)} |`,
    ),
    "",
    `The checks come from a process of their own, apart from the load: one is sent ${settings.healthIntervalMs} ms after the previous one was sent, or at once when that one took longer; each waits 5 s at most.`,
    "",
  ].join("\n");
}
