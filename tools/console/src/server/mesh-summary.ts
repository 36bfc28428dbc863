import type { EdgeState, MeshService, ServiceState, StreamState } from "../summary-types.js";
import type { Sample } from "@shopmesh/cli";

/** One scrape of a service's metrics endpoint: its samples, or why there are none. */
export interface Scrape {
  service: MeshService;
  atMs: number;
  samples?: Sample[];
  error?: string;
}

/** The calls the mesh makes, caller first; the dependency label names the callee in the caller's metrics. */
export const meshEdges: readonly { from: MeshService; to: MeshService }[] = [
  { from: "user-orders", to: "users" },
  { from: "user-orders", to: "orders" },
  { from: "user-orders", to: "products" },
  { from: "orders", to: "products" },
];

/**
 * The metric families the summary reads: the console asks each service for
 * these alone (`/metrics?name=...`), so that a scrape twice a second does not
 * make the services render their process and runtime metrics as well.
 */
export const summaryMetricFamilies = [
  "rpc_server_duration_seconds",
  "rpc_client_duration_seconds",
  "shopmesh_circuit_breaker_state",
  "shopmesh_projection_lag_events",
  "shopmesh_projection_connected",
] as const;

/** Counts by status code and by bucket of one histogram, summed over the other labels. */
interface HistogramTotals {
  count: number;
  failed: number;
  /** Cumulative count per upper bound in seconds, ascending. */
  buckets: [le: number, count: number][];
}

function histogram(samples: readonly Sample[], name: string, match: (labels: Record<string, string>) => boolean) {
  const totals: HistogramTotals = { count: 0, failed: 0, buckets: [] };
  const byLe = new Map<number, number>();
  for (const sample of samples) {
    if (!match(sample.labels)) continue;
    if (sample.name === `${name}_count`) {
      totals.count += sample.value;
      if (sample.labels.rpc_grpc_status_code !== "0") totals.failed += sample.value;
    } else if (sample.name === `${name}_bucket`) {
      const le = sample.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(sample.labels.le);
      byLe.set(le, (byLe.get(le) ?? 0) + sample.value);
    }
  }
  totals.buckets = [...byLe.entries()].sort((a, b) => a[0] - b[0]);
  return totals;
}

/**
 * The 99th percentile of the calls between two scrapes, as the upper bound
 * of the bucket it falls in (what the buckets can tell; Prometheus'
 * histogram_quantile interpolates inside the bucket instead). Null without
 * calls; for calls past the last finite bound, that bound.
 */
export function p99FromBuckets(before: HistogramTotals, after: HistogramTotals): number | null {
  const earlier = new Map(before.buckets);
  const deltas = after.buckets.map(([le, count]) => [le, count - (earlier.get(le) ?? 0)] as const);
  const total = deltas.at(-1)?.[1] ?? 0;
  if (total <= 0) return null;
  const rank = 0.99 * total;
  let lastFinite = 0;
  for (const [le, count] of deltas) {
    if (Number.isFinite(le)) lastFinite = le;
    if (count >= rank) return (Number.isFinite(le) ? le : lastFinite) * 1000;
  }
  return lastFinite * 1000;
}

/** Scrapes of each service, newest last, for rates over a window. */
export class ScrapeHistory {
  readonly #byService = new Map<MeshService, Scrape[]>();

  constructor(
    /** How far back rates and percentiles look. */
    readonly windowMs = 5000,
  ) {}

  add(scrape: Scrape): void {
    const list = this.#byService.get(scrape.service) ?? [];
    list.push(scrape);
    // Keep one scrape older than the window, the base the newest is compared with.
    while (list.length > 2 && list[1]!.atMs <= scrape.atMs - this.windowMs) list.shift();
    this.#byService.set(scrape.service, list);
  }

  /** Forgets everything: after nobody watched for a while, old counts make no useful base. */
  clear(): void {
    this.#byService.clear();
  }

  /** The newest scrape of a service and the base to compare it with (the oldest in the window). */
  #pair(service: MeshService): { base?: Scrape; latest?: Scrape } {
    const list = this.#byService.get(service) ?? [];
    const latest = list.at(-1);
    if (latest?.samples === undefined) return { latest };
    const base = list.find((s) => s !== latest && s.samples !== undefined);
    return { base, latest };
  }

  services(services: readonly MeshService[]): ServiceState[] {
    return services.map((service) => {
      const { base, latest } = this.#pair(service);
      if (latest === undefined) return { service, up: false, problem: "not scraped yet", callsPerSecond: null };
      if (latest.samples === undefined)
        return { service, up: false, problem: latest.error ?? "no metrics", callsPerSecond: null };
      const calls = (scrape: Scrape) =>
        histogram(scrape.samples!, "rpc_server_duration_seconds", (labels) => !labels.rpc_service?.includes("grpc."))
          .count;
      const seconds = base ? (latest.atMs - base.atMs) / 1000 : 0;
      return {
        service,
        up: true,
        callsPerSecond: base && seconds > 0 ? Math.max(0, calls(latest) - calls(base)) / seconds : null,
      };
    });
  }

  edges(): EdgeState[] {
    return meshEdges.map(({ from, to }) => {
      const { base, latest } = this.#pair(from);
      const edge: EdgeState = { from, to, ratePerSecond: null, p99Ms: null, errorShare: null };
      if (latest?.samples === undefined) return edge;
      const breaker = latest.samples.find(
        (s) => s.name === "shopmesh_circuit_breaker_state" && s.labels.dependency === to && s.value === 1,
      )?.labels.state;
      if (breaker === "closed" || breaker === "open" || breaker === "half-open") edge.breaker = breaker;
      if (base === undefined) return edge;
      const match = (labels: Record<string, string>) => labels.dependency === to;
      const now = histogram(latest.samples, "rpc_client_duration_seconds", match);
      const then = histogram(base.samples!, "rpc_client_duration_seconds", match);
      const seconds = (latest.atMs - base.atMs) / 1000;
      const calls = now.count - then.count;
      // A restarted service starts its counters again: no rate from before it.
      if (seconds <= 0 || calls < 0) return edge;
      edge.ratePerSecond = calls / seconds;
      edge.errorShare = calls === 0 ? null : (now.failed - then.failed) / calls;
      edge.p99Ms = p99FromBuckets(then, now);
      return edge;
    });
  }

  streams(): StreamState[] {
    const samples = this.#pair("user-orders").latest?.samples;
    if (samples === undefined) return [];
    const streams = new Map<string, StreamState>();
    const entry = (stream: string) => {
      let found = streams.get(stream);
      if (!found) {
        found = { stream, lagEvents: null, connected: null };
        streams.set(stream, found);
      }
      return found;
    };
    for (const sample of samples) {
      const stream = sample.labels.stream;
      if (stream === undefined) continue;
      if (sample.name === "shopmesh_projection_lag_events") entry(stream).lagEvents = sample.value;
      if (sample.name === "shopmesh_projection_connected") entry(stream).connected = sample.value === 1;
    }
    return [...streams.values()].sort((a, b) => a.stream.localeCompare(b.stream));
  }
}
