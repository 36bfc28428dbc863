import { readCpuMicros, readRssBytes } from "../process/proc-stats.js";

export { readCpuMicros, readRssBytes };

/** Peak and first-seen RSS of one process. */
export interface RssPeak {
  /** RSS when sampling started (idle, after start-up and seeding). */
  startBytes: number;
  peakBytes: number;
  samples: number;
}

/**
 * Samples the RSS of named processes every `intervalMs` while load runs and
 * keeps each one's peak.
 */
export class RssSampler {
  readonly #peaks = new Map<string, RssPeak>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pids: ReadonlyMap<string, number>,
    private readonly intervalMs = 100,
  ) {}

  start(): void {
    this.sample();
    this.#timer = setInterval(() => this.sample(), this.intervalMs);
    this.#timer.unref();
  }

  /** Takes one sample of every process now. */
  sample(): void {
    for (const [name, pid] of this.pids) {
      const rss = readRssBytes(pid);
      if (rss === undefined) continue;
      const peak = this.#peaks.get(name);
      if (!peak) this.#peaks.set(name, { startBytes: rss, peakBytes: rss, samples: 1 });
      else {
        peak.peakBytes = Math.max(peak.peakBytes, rss);
        peak.samples++;
      }
    }
  }

  /** Stops sampling and returns every process's peak. */
  stop(): Map<string, RssPeak> {
    clearInterval(this.#timer);
    this.sample();
    return new Map(this.#peaks);
  }
}
