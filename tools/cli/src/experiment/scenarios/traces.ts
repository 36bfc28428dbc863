import { randomBytes } from "node:crypto";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import { statusName } from "@shopmesh/chassis";
import { dependencyNameOf, type DependencyName } from "@shopmesh/user-orders/dependencies";
import { Fallback } from "@shopmesh/sdk/userorders/v1";
import type { OtlpReceiver, ReceivedSpan } from "../../tracing/otlp-receiver.js";
import type { ServiceProcess } from "../../process/spawn-service.js";
import { tracingEnv, type ExperimentMesh } from "../experiment-mesh.js";
import type { ScenarioContext } from "../scenario-context.js";

/** The three views the report draws. */
export type TracedViewName = "healthy" | "products-hung" | "hedged";

/** One dependency's part of a traced view, as the view's `timings` reported it. */
export interface TracedTiming {
  dependency: DependencyName;
  durationMs: number;
  timeoutMs: number;
  attempts: number;
  hedges: number;
  code: string;
}

/** One GetUserOrders call sent with its own `traceparent`, and the spans its trace gathered. */
export interface TracedView {
  name: TracedViewName;
  traceId: string;
  /** What the mesh was doing to it. */
  setUp: string;
  latencyMs: number;
  /** "OK", or the status the call failed with. */
  code: string;
  degradations: { dependency: string; fallback: string; code: string }[];
  timings: TracedTiming[];
  /** Every span of the trace that arrived. */
  spans: ReceivedSpan[];
  /** Whether every span the view's timings imply arrived before the wait ended. */
  complete: boolean;
  /** Which try this view was: the hedged view is sent again until a hedge answers first. */
  tries: number;
}

export interface TracesResult {
  views: TracedView[];
  /** The hedged aggregator's products hedge delay, and the fault that made products slow. */
  hedge: { delayMs: number; slowMs: number; slowProbability: number; maxTries: number };
  /** The whole deadline each traced call was sent with. */
  callTimeoutMs: number;
  /** Spans the receiver got over the whole run: only the traced calls' if the sampler works. */
  spansReceived: number;
  /** How long the step took, the restart included (the hedging aggregator was started beforehand). */
  seconds: number;
  /** How long restarting the four services with tracing took. */
  restartSeconds: number;
}

const callTimeoutMs = 1000;
const spanWaitMs = 10_000;
const hedge = { delayMs: 50, slowMs: 200, slowProbability: 0.5, maxTries: 10 };

/** A W3C `traceparent` for a new sampled trace, and its trace id. */
function newTrace(): { traceId: string; traceparent: string } {
  const traceId = randomBytes(16).toString("hex");
  return { traceId, traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` };
}

/**
 * Whether a trace has every span the view implies: the view's server span,
 * one client span per request its timings count (attempts and hedges), and
 * a server span in the dependency under each of them.
 */
export function traceComplete(spans: readonly ReceivedSpan[], timings: readonly TracedTiming[]): boolean {
  const view = spans.find((s) => s.kind === "server" && s.service === "user-orders");
  if (!view) return false;
  const clients = spans.filter((s) => s.kind === "client" && s.parentSpanId === view.spanId);
  const requests = timings.reduce((sum, t) => sum + t.attempts + t.hedges, 0);
  return (
    clients.length === requests &&
    clients.every((c) => spans.some((s) => s.kind === "server" && s.parentSpanId === c.spanId))
  );
}

/** 2 when a hedge to products answered first, 1 when one was sent but lost, 0 when none was sent. */
function hedgeOutcome(view: TracedView): number {
  const hedges = view.spans.filter(
    (s) =>
      s.kind === "client" && s.attributes["peer.service"] === "products" && s.attributes["shopmesh.hedge"] === true,
  );
  if (hedges.length === 0) return 0;
  return hedges.some((s) => s.attributes["rpc.grpc.status_code"] === 0) ? 2 : 1;
}

/**
 * Starts the user-orders that the hedged view is sent to: a second process
 * beside the mesh's own, hedging products and tracing to `traceEndpoint`.
 * It takes seconds to start, so the experiment starts it long before the
 * step and leaves it idle meanwhile (tracing costs a process only the calls
 * it serves).
 */
export function startHedgingAggregator(mesh: ExperimentMesh, traceEndpoint: string): Promise<ServiceProcess> {
  return mesh.spawnAggregator({ ...tracingEnv(traceEndpoint), HEDGE_PRODUCTS_DELAY: `${hedge.delayMs}ms` });
}

/**
 * Three GetUserOrders calls, each with a `traceparent` of its own, whose
 * spans the services export to the experiment's OTLP receiver: a healthy
 * view, one with products hanging (its request ends at the deadline
 * user-orders gave it, and the view falls back to lines without product
 * details), and one from a user-orders that hedges products while products
 * is slow half the time (sent until a view's hedge answered first, at most
 * a few times).
 */
export async function traces(
  context: ScenarioContext,
  receiver: OtlpReceiver,
  hedgingAggregator?: Promise<ServiceProcess>,
): Promise<TracesResult> {
  const started = performance.now();
  const steps = 2 + hedge.maxTries;
  context.progress.begin("traces", steps);
  let done = 0;
  const step = (label: string) => context.progress.update(++done, label);
  const hedgingStart = hedgingAggregator ?? startHedgingAggregator(context.mesh, receiver.endpoint);
  const views: TracedView[] = [];
  context.progress.update(0, "restarting the services with tracing");
  await context.mesh.traceTo(receiver.endpoint);
  const restartSeconds = (performance.now() - started) / 1000;
  await context.mesh.setFaults({});
  const token = await context.token();
  const userId = context.dataset.users[0]!.id;
  const send = async (
    name: TracedViewName,
    setUp: string,
    target?: string,
  ): Promise<Omit<TracedView, "spans" | "complete">> => {
    const { traceId, traceparent } = newTrace();
    const sent = performance.now();
    const client = context.mesh.view(token, target);
    try {
      const response = await client.getUserOrders(
        { userId, pageSize: 20 },
        { timeoutMs: callTimeoutMs, headers: { traceparent } },
      );
      return {
        name,
        traceId,
        setUp,
        latencyMs: performance.now() - sent,
        code: "OK",
        degradations: response.degradations.map((d) => ({
          dependency: dependencyNameOf(d.dependency) ?? String(d.dependency),
          fallback: Fallback[d.fallback] ?? String(d.fallback),
          code: d.code,
        })),
        timings: response.timings.flatMap((t) => {
          const dependency = dependencyNameOf(t.dependency);
          if (!dependency) return [];
          return [
            {
              dependency,
              durationMs: t.duration ? durationMs(t.duration) : 0,
              timeoutMs: t.timeout ? durationMs(t.timeout) : 0,
              attempts: t.attempts,
              hedges: t.hedges,
              code: t.code,
            },
          ];
        }),
        tries: 1,
      };
    } catch (error) {
      const failure = ConnectError.from(error);
      return {
        name,
        traceId,
        setUp,
        latencyMs: performance.now() - sent,
        code: statusName(failure.code),
        degradations: [],
        timings: [],
        tries: 1,
      };
    }
  };

  const collect = async (sent: Omit<TracedView, "spans" | "complete">): Promise<TracedView> => {
    const arrived = await receiver
      .waitForTrace(sent.traceId, (s) => traceComplete(s, sent.timings), spanWaitMs)
      .then(
        (spans) => ({ spans, complete: true }),
        () => ({ spans: receiver.trace(sent.traceId), complete: false }),
      );
    return { ...sent, ...arrived };
  };
  // Untraced views first, so that the traced ones show open channels rather than connection set-up.
  // Their answers do not matter: one that times out on a busy machine has still opened its channels.
  const warmUp = async (target?: string) => {
    const client = context.mesh.view(token, target);
    for (let i = 0; i < 3; i++) {
      await client.getUserOrders({ userId, pageSize: 20 }, { timeoutMs: 3000 }).catch(() => undefined);
    }
  };

  await warmUp();
  views.push(await collect(await send("healthy", "no faults")));
  step("healthy");
  await context.mesh.setFaults({ products: { hang: true } });
  const hung = await send("products-hung", "products' BatchGetProducts hangs");
  await context.mesh.setFaults({});
  views.push(await collect(hung));
  step("products hung");

  // Started long before on a machine that was busy seeding: if it did not become ready then, once more now.
  const hedging = await hedgingStart.catch(() => startHedgingAggregator(context.mesh, receiver.endpoint));
  try {
    await warmUp(hedging.address);
    await context.mesh.setFaults({ products: { latencyMs: hedge.slowMs, slowProbability: hedge.slowProbability } });
    const setUp = `products' BatchGetProducts ${hedge.slowMs} ms slower with probability ${hedge.slowProbability}; user-orders hedges products after ${hedge.delayMs} ms`;
    // Best: a view whose hedge answered first; else one that hedged at all; else the last.
    let kept: TracedView | undefined;
    for (let tries = 1; tries <= hedge.maxTries && (kept === undefined || hedgeOutcome(kept) < 2); tries++) {
      const view = await collect({ ...(await send("hedged", setUp, hedging.address)), tries });
      step(`hedged, try ${tries}`);
      if (kept === undefined || hedgeOutcome(view) >= hedgeOutcome(kept)) kept = view;
    }
    views.push(kept!);
  } finally {
    await context.mesh.setFaults({});
    await hedging.stop("SIGTERM");
  }
  const seconds = (performance.now() - started) / 1000;
  context.progress.end(
    `${views.length} traces, ${views.reduce((sum, v) => sum + v.spans.length, 0)} spans, ${seconds.toFixed(1)} s`,
  );
  return { views, hedge, callTimeoutMs, spansReceived: receiver.received, seconds, restartSeconds };
}
