import { readFileSync } from "node:fs";

/** Resident set size of a process in bytes, from /proc/<pid>/status VmRSS (Linux); undefined when unreadable. */
export function readRssBytes(pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) a process has used, in µs, from /proc/<pid>/stat (Linux); undefined when unreadable. */
export function readCpuMicros(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of the line, in clock ticks (100 a second on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return undefined;
  }
}

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
