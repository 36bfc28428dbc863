import type { ServiceProcess } from "../process/spawn-service.js";
import type { LocalMesh, ServiceName } from "./local-mesh.js";

/** When to start a service that exited again. */
export interface RestartPolicy {
  /** Delay before the first restart; it doubles with every restart that follows too soon. */
  firstDelayMs: number;
  maxDelayMs: number;
  /** A service that ran this long before it exited is restarted after the first delay again. */
  stableMs: number;
  /** Restarts that fail to become ready, in a row, before giving up on the service. */
  maxFailedStarts: number;
}

export const defaultRestartPolicy: RestartPolicy = {
  firstDelayMs: 1000,
  maxDelayMs: 30_000,
  stableMs: 30_000,
  maxFailedStarts: 5,
};

/** What the restarter reports, for the launcher to print. */
export interface RestartEvents {
  exited(service: ServiceName, how: string, delayMs: number): void;
  failed(service: ServiceName, error: unknown, delayMs: number): void;
  gaveUp(service: ServiceName, failedStarts: number): void;
}

interface Watched {
  startedAt: number;
  /** Restarts since the service last ran for `stableMs`. */
  attempt: number;
  failedStarts: number;
  timer?: NodeJS.Timeout;
}

/**
 * Keeps the services of a local mesh running: a service process that exits
 * (crashed, killed) is started again on the same port with the same
 * settings, after a delay that doubles while it keeps failing, and the other
 * services are not touched meanwhile.
 */
export class RestartOnExit {
  readonly #watched = new Map<ServiceName, Watched>();
  readonly #starting = new Set<Promise<unknown>>();
  #stopped = false;

  constructor(
    private readonly mesh: LocalMesh,
    private readonly events: RestartEvents,
    private readonly policy: RestartPolicy = defaultRestartPolicy,
  ) {}

  /** Watches every service the mesh runs now. */
  watchAll(): void {
    for (const [service, running] of this.mesh.processes) this.#watch(service, running);
  }

  /** Stops restarting; waits for a restart under way, and stops what it started. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const watched of this.#watched.values()) clearTimeout(watched.timer);
    await Promise.allSettled([...this.#starting]);
  }

  #watch(service: ServiceName, running: ServiceProcess): void {
    const watched = this.#watched.get(service) ?? { startedAt: 0, attempt: 0, failedStarts: 0 };
    watched.startedAt = performance.now();
    this.#watched.set(service, watched);
    running.child.once("exit", (code, signal) => {
      if (this.#stopped) return;
      if (performance.now() - watched.startedAt >= this.policy.stableMs) watched.attempt = 0;
      const delayMs = this.#delay(watched);
      this.events.exited(service, signal ?? `code ${code}`, delayMs);
      this.#schedule(service, watched, delayMs);
    });
  }

  #delay(watched: Watched): number {
    return Math.min(this.policy.firstDelayMs * 2 ** watched.attempt, this.policy.maxDelayMs);
  }

  #schedule(service: ServiceName, watched: Watched, delayMs: number): void {
    watched.timer = setTimeout(() => {
      watched.attempt++;
      const start = this.mesh.startService(service).then(
        async (started) => {
          if (this.#stopped) {
            await started.stop("SIGTERM");
            return;
          }
          watched.failedStarts = 0;
          this.#watch(service, started);
        },
        (error: unknown) => {
          if (this.#stopped) return;
          watched.failedStarts++;
          if (watched.failedStarts >= this.policy.maxFailedStarts) {
            this.events.gaveUp(service, watched.failedStarts);
            return;
          }
          const next = this.#delay(watched);
          this.events.failed(service, error, next);
          this.#schedule(service, watched, next);
        },
      );
      this.#starting.add(start);
      void start.finally(() => this.#starting.delete(start));
    }, delayMs);
  }
}
