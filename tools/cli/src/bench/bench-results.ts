import type { BenchTarget } from "./bench-targets.js";
import type { BenchProcessName } from "./bench-mesh.js";

/** One target at one concurrency level. */
export interface StepResult {
  target: BenchTarget["key"];
  title: string;
  concurrency: number;
  calls: number;
  errors: number;
  firstError?: string;
  degraded: number;
  elapsedSeconds: number;
  callsPerSecond: number;
  /** Latency percentiles of successful calls, in ms. */
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  /** The bare server's row this one is read against: the one over the same transport. */
  baseline: "bare" | "bare.tls";
  /** calls/s as a share of that baseline's at the same concurrency. */
  ratioToBaseline: number;
  /** CPU the bench (client) process spent per call, µs. */
  clientCpuMicrosPerCall: number;
  /** CPU the server processes involved spent per call, µs (summed). */
  serverCpuMicrosPerCall: number | null;
  /** The same, process by process (absent when a process's CPU could not be read). */
  serverCpuMicrosPerCallByProcess: Partial<Record<BenchProcessName, number>>;
}

/** Peak RSS of one process during the load. */
export interface RssResult {
  process: BenchProcessName;
  startMiB: number;
  peakMiB: number;
  /** Peak as a multiple of the bare baseline server's peak. */
  ratioToBaseline: number;
}

/** One of the bench's targets, measured. */
export interface TargetCheck {
  name: string;
  measured: number;
  target: number;
  /** How `measured` and `target` are expressed. */
  unit:
    | "share of baseline calls/s"
    | "multiple of baseline peak RSS"
    | "µs of server CPU per call"
    | "multiple of the dependencies' CPU";
  /** True when the measured figure meets the target. */
  pass: boolean;
  detail: string;
}

/** Everything a run measured: what bench.json holds and bench.md shows. */
export interface BenchReport {
  generatedAt: string;
  command: string;
  machine: { cpuModel: string; cpus: number; totalMemoryGiB: number; platform: string; release: string; node: string };
  settings: {
    concurrency: number[];
    connections: number;
    durationSeconds: number;
    warmupSeconds: number;
    sliceSeconds: number;
    quick: boolean;
    portBase: number;
    /** The flags `node` gave every service process (not the bare server's, which has none). */
    serviceNodeFlags: readonly string[];
  };
  seeded: { products: number; orders: number; linesPerOrder: string };
  steps: StepResult[];
  rss: RssResult[];
  /** What the OTLP sink of products-traced received over the whole run. */
  otlpExport?: { exports: number; bytes: number };
  /**
   * The baselines and main reads measured again with every server on another
   * Node.js (--other-node), and the targets read from those rows alone.
   */
  otherNode?: {
    node: string;
    serviceNodeFlags: readonly string[];
    steps: StepResult[];
    rss: RssResult[];
    checks: TargetCheck[];
  };
  checks: TargetCheck[];
}
