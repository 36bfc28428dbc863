// What the console's server tells the page, as plain JSON (no RPC): the
// mesh's state from the services' metrics, the built-in load's results and
// a trace laid out as a waterfall. Types, and the few constants both sides
// must agree on, shared by server and page.

/** The four services of the mesh, in the order they start. */
export const meshServices = ["users", "products", "orders", "user-orders"] as const;
export type MeshService = (typeof meshServices)[number];

/** A service as its last metrics scrape found it. */
export interface ServiceState {
  service: MeshService;
  /** False when its metrics endpoint did not answer (the process is down or not started). */
  up: boolean;
  /** Why it counts as down, when it does. */
  problem?: string;
  /** Calls it answered per second over the window. */
  callsPerSecond: number | null;
}

/** Calls from one service to another, over the last window. */
export interface EdgeState {
  from: MeshService;
  to: MeshService;
  /** Requests per second (every retry and hedge counts). */
  ratePerSecond: number | null;
  /** 99th percentile latency in ms, from the histogram's buckets (the upper bound of the bucket it falls in). */
  p99Ms: number | null;
  /** Fraction of requests that ended with a status other than OK. */
  errorShare: number | null;
  /** The caller's circuit breaker for this dependency, where it has one. */
  breaker?: "closed" | "open" | "half-open";
}

/** One event stream user-orders' projection follows. */
export interface StreamState {
  stream: string;
  /** Events the source has that the projection has not applied. */
  lagEvents: number | null;
  connected: boolean | null;
}

/** One answered (or failed) view of the built-in load. */
export interface LoadSample {
  /** Milliseconds since the Unix epoch when it was sent. */
  atMs: number;
  consistency: "STRONG" | "EVENTUAL";
  latencyMs: number;
  outcome: "full" | "degraded" | "failed";
  /** The status code name of a failure, or the degraded dependencies. */
  detail: string;
  traceId: string;
}

export interface LoadState {
  /** Views per second asked for; 0 is off. */
  ratePerSecond: number;
  /** When a running load stops by itself (ms since the epoch). */
  endsAtMs: number | null;
  /** The last minute's views, oldest first. */
  samples: LoadSample[];
}

/** What the page receives a few times a second while it is open. */
export interface MeshSummary {
  atMs: number;
  /** Seconds of metrics the rates and percentiles are computed over. */
  windowSeconds: number;
  services: ServiceState[];
  edges: EdgeState[];
  streams: StreamState[];
  load: LoadState;
  /** The id of the newest trace the console has received spans of. */
  latestTraceId: string | null;
}

/** One span of a trace as a waterfall row (times in ms from the trace's start). */
export interface WaterfallBar {
  depth: number;
  label: string;
  startMs: number;
  endMs: number;
  kind: "server" | "client" | "hedge" | "failed" | "cancelled";
  note: string;
}

export interface TraceView {
  traceId: string;
  bars: WaterfallBar[];
  events: { row: number; atMs: number; label: string }[];
}

/** Fastest load the console offers: it is a demonstration, not a benchmark. */
export const maxLoadRate = 20;
/**
 * Slowest load the console offers, the slider's lowest step. Views are sent
 * every 1000 / rate ms, and a Node timer holds at most 2^31 - 1 ms: a longer
 * delay fires every millisecond instead, so a tiny rate would be the fastest.
 */
export const minLoadRate = 1;

/** The answer of POST /api/load. */
export interface LoadControl {
  ratePerSecond: number;
}
