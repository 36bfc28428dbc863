import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/**
 * The process's Prometheus metrics: one registry, and every instrument the
 * chassis and the services record into. Names follow OpenTelemetry's RPC
 * semantic conventions in their Prometheus form (`rpc.server.duration` in
 * seconds becomes `rpc_server_duration_seconds`); what is shopmesh's own
 * starts with `shopmesh_`.
 *
 * State that already lives somewhere (a breaker's state, a projection's
 * position, an outbox's head, admission's queue) is read when Prometheus
 * scrapes, from sources registered with the `track*` functions, rather than
 * copied into gauges on every change.
 */
export const metricsRegistry = new Registry();

/** Seconds; from 1 ms to 10 s, the range of a call's deadline. */
const durationBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const rpcLabels = ["rpc_service", "rpc_method", "rpc_grpc_status_code"] as const;
type RpcLabel = (typeof rpcLabels)[number];

export const rpcServerDuration = new Histogram<RpcLabel>({
  name: "rpc_server_duration_seconds",
  help: "Time from a call's arrival to its status, per method and gRPC status code (calls refused before their handler ran included).",
  labelNames: rpcLabels,
  buckets: durationBuckets,
  registers: [metricsRegistry],
});

export const rpcClientDuration = new Histogram<RpcLabel | "dependency">({
  name: "rpc_client_duration_seconds",
  help: "Time of each request sent to a dependency (every retry and hedge is one), per method and gRPC status code.",
  labelNames: [...rpcLabels, "dependency"],
  buckets: durationBuckets,
  registers: [metricsRegistry],
});

export const callsRefused = new Counter<RpcLabel>({
  name: "shopmesh_calls_refused_total",
  help: "Calls ended before their handler ran: RESOURCE_EXHAUSTED by admission control, INVALID_ARGUMENT for undecodable requests.",
  labelNames: rpcLabels,
  registers: [metricsRegistry],
});

export const retries = new Counter<"dependency">({
  name: "shopmesh_retries_total",
  help: "Requests sent to a dependency again after a retryable failure.",
  labelNames: ["dependency"],
  registers: [metricsRegistry],
});

export const hedges = new Counter<"dependency">({
  name: "shopmesh_hedges_total",
  help: "Second, concurrent requests sent to a dependency that had not answered in time.",
  labelNames: ["dependency"],
  registers: [metricsRegistry],
});

export const degradations = new Counter<"dependency" | "fallback">({
  name: "shopmesh_degradations_total",
  help: "Answers that did without a dependency, by dependency and the fallback used.",
  labelNames: ["dependency", "fallback"],
  registers: [metricsRegistry],
});

/** A circuit breaker's state as logs spell it. */
export type BreakerStateName = "closed" | "open" | "half-open";
const breakerStateNames: readonly BreakerStateName[] = ["closed", "open", "half-open"];
const breakers = new Map<string, () => BreakerStateName>();

new Gauge<"dependency" | "state">({
  name: "shopmesh_circuit_breaker_state",
  help: "1 for the state each dependency's circuit breaker is in (closed, open, half-open), 0 for the others.",
  labelNames: ["dependency", "state"],
  registers: [metricsRegistry],
  collect() {
    this.reset();
    for (const [dependency, stateOf] of breakers) {
      const current = stateOf();
      for (const state of breakerStateNames) this.set({ dependency, state }, state === current ? 1 : 0);
    }
  },
});

/** Reports a dependency's circuit breaker; a later one for the same dependency replaces it. */
export function trackBreaker(dependency: string, state: () => BreakerStateName): void {
  breakers.set(dependency, state);
}

/** Where a projection's stream stands. */
export interface StreamProgress {
  stream: string;
  /** Sequence of the last event applied. */
  applied: number;
  /** Newest sequence the source has reported. */
  head: number;
  connected: boolean;
}

let projection: (() => StreamProgress[]) | undefined;

const projectionGauge = (name: string, help: string, value: (progress: StreamProgress) => number) =>
  new Gauge<"stream">({
    name,
    help,
    labelNames: ["stream"],
    registers: [metricsRegistry],
    collect() {
      this.reset();
      for (const progress of projection?.() ?? []) this.set({ stream: progress.stream }, value(progress));
    },
  });
projectionGauge(
  "shopmesh_projection_applied_sequence",
  "Sequence number of the last event the projection applied, per stream.",
  (p) => p.applied,
);
projectionGauge(
  "shopmesh_projection_head_sequence",
  "Newest sequence number the stream's source has reported, per stream.",
  (p) => p.head,
);
projectionGauge(
  "shopmesh_projection_lag_events",
  "Events the source has reported that the projection has not applied yet, per stream.",
  (p) => Math.max(0, p.head - p.applied),
);
projectionGauge("shopmesh_projection_connected", "1 while the projection is connected to the stream's source.", (p) =>
  p.connected ? 1 : 0,
);

/** Reports the projection's streams; a later projection replaces it, and `undefined` forgets it. */
export function trackProjection(progress: (() => StreamProgress[]) | undefined): void {
  projection = progress;
}

/** Where a service's outbox stands. */
export interface OutboxProgress {
  /** Whose outbox: the service's name. */
  outbox: string;
  /** Newest sequence number in the outbox. */
  head: number;
  /** Newest sequence number relayed to JetStream; undefined when nothing relays. */
  relayed: number | undefined;
}

let outbox: (() => OutboxProgress) | undefined;

// Labelled, so that a process without an outbox (or a relay) reports no series rather than a 0.
new Gauge<"outbox">({
  name: "shopmesh_outbox_head_sequence",
  help: "Sequence number of the newest event in the service's outbox.",
  labelNames: ["outbox"],
  registers: [metricsRegistry],
  collect() {
    this.reset();
    const progress = outbox?.();
    if (progress) this.set({ outbox: progress.outbox }, progress.head);
  },
});

new Gauge<"outbox">({
  name: "shopmesh_outbox_backlog_events",
  help: "Events in the outbox not yet relayed to JetStream (absent when the service does not relay).",
  labelNames: ["outbox"],
  registers: [metricsRegistry],
  collect() {
    this.reset();
    const progress = outbox?.();
    if (progress?.relayed !== undefined)
      this.set({ outbox: progress.outbox }, Math.max(0, progress.head - progress.relayed));
  },
});

/** Reports the service's outbox; `undefined` forgets it. */
export function trackOutbox(progress: (() => OutboxProgress) | undefined): void {
  outbox = progress;
}

let admission: (() => { running: number; waiting: number }) | undefined;

new Gauge<"queue">({
  name: "shopmesh_admission_calls",
  help: "Unary calls holding an admission slot (queue=running) and waiting for one (queue=waiting).",
  labelNames: ["queue"],
  registers: [metricsRegistry],
  collect() {
    this.reset();
    const now = admission?.();
    if (!now) return;
    this.set({ queue: "running" }, now.running);
    this.set({ queue: "waiting" }, now.waiting);
  },
});

/** Reports admission control's queue; `undefined` forgets it. */
export function trackAdmission(state: (() => { running: number; waiting: number }) | undefined): void {
  admission = state;
}

let defaultsCollected = false;

/**
 * Adds prom-client's process and Node.js metrics (CPU, memory, file
 * descriptors, event loop delay, garbage collection) to the registry, once:
 * they sample the process, so only a process that serves its metrics pays.
 */
export function collectProcessMetrics(): void {
  if (defaultsCollected) return;
  defaultsCollected = true;
  collectDefaultMetrics({ register: metricsRegistry });
}

/** `/shopmesh.products.v1.ProductsService/GetProduct` as its service and method labels. */
export function rpcLabelsOf(path: string): { rpc_service: string; rpc_method: string } {
  const slash = path.lastIndexOf("/");
  return { rpc_service: path.slice(path.startsWith("/") ? 1 : 0, slash), rpc_method: path.slice(slash + 1) };
}
