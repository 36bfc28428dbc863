import { viewSender, warmUp, type ScenarioContext } from "../scenario-context.js";
import { countKinds, quantile } from "../statistics.js";
import { answerKinds, runPaced, type AnswerKind, type ViewSample } from "../view-load.js";

export interface OutageSecond {
  second: number;
  counts: Record<AnswerKind, number>;
  p50: number;
  p99: number;
}

export interface OutageResult {
  timeline: OutageSecond[];
  n: number;
  counts: Record<AnswerKind, number>;
  ratePerSecond: number;
  durationMs: number;
  /** When products was killed, and when its restart was ready, ms into the run. */
  killedAtMs: number;
  restartedAtMs: number;
  restartReadyAtMs: number;
  /** First degraded answer sent after the kill, ms after it. */
  firstDegradedAfterKillMs: number | undefined;
  /** Last non-full answer sent after the restart was ready, ms after that (0: none). */
  recoveredAfterReadyMs: number;
  /** Answers during the outage (kill to restart ready) by kind. */
  duringOutage: Record<AnswerKind, number>;
  skipped: number;
}

/**
 * Products killed (SIGKILL) in the middle of a steady stream of views and
 * started again: answers per second by kind, and latency.
 */
export async function outage(context: ScenarioContext): Promise<OutageResult> {
  const durationMs = context.quick ? 8_000 : 30_000;
  const ratePerSecond = context.quick ? 30 : 50;
  const killAtMs = durationMs * 0.25;
  const restartAtMs = durationMs * 0.55;
  await context.mesh.configureAggregator({});
  await context.mesh.setFaults({});
  const send = await viewSender(context, 2000);
  await warmUp(send);
  const expected = (durationMs / 1000) * ratePerSecond;
  context.progress.begin("outage", expected);
  let done = 0;
  let restartReadyAtMs = 0;
  const run = await runPaced({
    ratePerSecond,
    durationMs,
    maxInFlight: 64,
    send,
    events: [
      { atMs: killAtMs, run: () => context.mesh.kill("products") },
      { atMs: restartAtMs, run: () => context.mesh.restart("products") },
    ],
    onSample: (s) => context.progress.update(++done, s.atMs < killAtMs ? "before" : s.atMs < restartAtMs ? "products down" : "after restart"),
  });
  const [killed, restarted] = run.events;
  restartReadyAtMs = restarted!.doneMs;
  const samples = run.samples.sort((a, b) => a.atMs - b.atMs);
  const timeline: OutageSecond[] = [];
  for (let second = 0; second < Math.ceil(durationMs / 1000); second++) {
    const inSecond = samples.filter((s) => Math.floor(s.atMs / 1000) === second);
    const latencies = inSecond.map((s) => s.latencyMs);
    timeline.push({ second, counts: countKinds(inSecond), p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) });
  }
  const firstDegraded = samples.find((s) => s.atMs >= killed!.atMs && s.kind !== "full");
  const lastBad = samples.filter((s) => s.atMs >= restartReadyAtMs && s.kind !== "full").at(-1);
  const during = (s: ViewSample) => s.atMs >= killed!.atMs && s.atMs < restartReadyAtMs;
  const result: OutageResult = {
    timeline,
    n: samples.length,
    counts: countKinds(samples),
    ratePerSecond,
    durationMs,
    killedAtMs: killed!.atMs,
    restartedAtMs: restarted!.atMs,
    restartReadyAtMs,
    firstDegradedAfterKillMs: firstDegraded ? firstDegraded.atMs - killed!.atMs : undefined,
    recoveredAfterReadyMs: lastBad ? lastBad.atMs + lastBad.latencyMs - restartReadyAtMs : 0,
    duringOutage: countKinds(samples.filter(during)),
    skipped: run.skipped,
  };
  context.progress.end(
    `${samples.length} answers; during the outage ${answerKinds.map((k) => `${result.duringOutage[k]} ${k}`).join(", ")}`,
  );
  return result;
}
