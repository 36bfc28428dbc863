import { setTimeout as sleep } from "node:timers/promises";
import { ExponentialBackoff, type IBackoff } from "cockatiel";
import { inEventSpan, tracingEnabled } from "@shopmesh/chassis";
import type { DependencyName } from "../dependencies.js";
import type { EventSource, StreamEvents } from "./event-source.js";
import type { ProjectionStore, StreamPosition } from "./projection-store.js";

/** What a follower reports about its stream. */
export interface StreamState {
  stream: DependencyName;
  /** The last applied event. */
  position: StreamPosition;
  /** The newest sequence number the source last reported. */
  headSequence: number;
  connected: boolean;
  /** When the source was last heard from (ms since the epoch), undefined if never. */
  lastContactAt: number | undefined;
  /** Connection attempts that failed since the last good one. */
  failures: number;
  /**
   * Whether, since start, the follower has applied everything its source had
   * reported: until then a row missing from the projection may just not have
   * arrived yet.
   */
  caughtUpOnce: boolean;
}

/** Logging a follower does. */
export interface FollowerLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

/** Options for {@link StreamFollower}. */
export interface StreamFollowerOptions {
  /** First reconnect delay (default 100 ms); grows with jitter after each failure. */
  initialBackoffMs?: number;
  /** Longest reconnect delay (default 5 s). */
  maxBackoffMs?: number;
  /** Most events applied in one transaction (default 500). */
  maxBatch?: number;
}

/**
 * Keeps one stream of the projection up to date: opens it after the stored
 * position, applies what arrives, and when the connection fails or ends,
 * reconnects after an exponential backoff with jitter (reset by a good
 * connection), resuming from the stored position again.
 *
 * Events that arrive together are applied together: the first schedules a
 * flush for the next turn of the event loop, so a burst (a replay, say)
 * costs one transaction, and one fsync, per batch rather than per event;
 * past `maxBatch` the follower applies at once, so it never holds more than
 * that many unapplied events.
 */
export class StreamFollower<S extends DependencyName> {
  readonly #abort = new AbortController();
  readonly #backoff: ExponentialBackoff<unknown>;
  readonly #maxBatch: number;
  #pending: StreamEvents[S][] = [];
  #flushQueued: NodeJS.Immediate | undefined;
  /** Aborts the current connection only; the loop then reconnects. */
  #connection: AbortController | undefined;
  #state: StreamState;
  #running: Promise<void> | undefined;

  constructor(
    readonly stream: S,
    private readonly source: EventSource,
    private readonly store: ProjectionStore,
    private readonly log: FollowerLog,
    options: StreamFollowerOptions = {},
  ) {
    this.#backoff = new ExponentialBackoff({
      initialDelay: options.initialBackoffMs ?? 100,
      maxDelay: options.maxBackoffMs ?? 5000,
    });
    this.#maxBatch = options.maxBatch ?? 500;
    const position = store.position(stream);
    this.#state = {
      stream,
      position,
      headSequence: position.sequence,
      connected: false,
      lastContactAt: undefined,
      failures: 0,
      caughtUpOnce: false,
    };
  }

  state(): StreamState {
    return { ...this.#state };
  }

  start(): void {
    this.#running ??= this.#run();
  }

  /** Stops following and applies whatever had arrived. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#running;
    this.#flush();
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    let backoff: IBackoff<unknown> | undefined;
    while (!signal.aborted) {
      const after = this.#state.position.sequence;
      const connection = new AbortController();
      this.#connection = connection;
      const stopConnection = () => connection.abort();
      signal.addEventListener("abort", stopConnection, { once: true });
      try {
        for await (const message of this.source.open(this.stream, BigInt(after), connection.signal)) {
          if (!this.#state.connected) {
            this.#state.connected = true;
            this.#state.failures = 0;
            backoff = undefined;
            this.log.info({ stream: this.stream, after, source: this.source.kind }, "event stream connected");
          }
          this.#state.lastContactAt = Date.now();
          this.#state.headSequence = Math.max(this.#state.headSequence, Number(message.headSequence));
          if (message.event) this.#enqueue(message.event);
          else if (this.#pending.length === 0) this.#noteCaughtUp();
        }
        if (!connection.signal.aborted) this.log.warn({ stream: this.stream }, "event stream ended; reconnecting");
      } catch (error) {
        if (signal.aborted) break;
        this.#state.failures++;
        const level = this.#state.failures === 1 ? "warn" : "info";
        this.log[level](
          { stream: this.stream, failures: this.#state.failures, err: String(error) },
          "event stream failed; reconnecting",
        );
      } finally {
        signal.removeEventListener("abort", stopConnection);
      }
      this.#flush();
      this.#state.connected = false;
      if (signal.aborted) break;
      backoff = backoff ? backoff.next(undefined) : this.#backoff.next();
      await sleep(backoff.duration, undefined, { signal }).catch(() => undefined);
    }
  }

  #enqueue(event: StreamEvents[S]): void {
    this.#pending.push(event);
    if (this.#pending.length >= this.#maxBatch) this.#flush();
    else this.#flushQueued ??= setImmediate(() => this.#flush());
  }

  #flush(): void {
    if (this.#flushQueued) clearImmediate(this.#flushQueued);
    this.#flushQueued = undefined;
    if (this.#pending.length === 0) return;
    const events = this.#pending;
    this.#pending = [];
    let result;
    try {
      // Traced, one span for the batch's transaction, the parent of each event's.
      result = tracingEnabled()
        ? inEventSpan(
            `apply ${this.stream} events`,
            { "shopmesh.event.stream": this.stream, "shopmesh.events.count": events.length },
            undefined,
            () => this.store.applyBatch(this.stream, events),
          )
        : this.store.applyBatch(this.stream, events);
    } catch (error) {
      // Nothing of the batch was kept (one transaction). Start over from the
      // stored position rather than apply later events past a hole.
      this.log.warn(
        { stream: this.stream, err: String(error) },
        "could not apply events; reconnecting from the stored position",
      );
      this.#connection?.abort();
      return;
    }
    if (result.missing > 0) {
      this.log.warn(
        { stream: this.stream, missing: result.missing, position: result.position.sequence },
        "event stream skipped sequence numbers",
      );
    }
    this.#state.position = result.position;
    this.#state.headSequence = Math.max(this.#state.headSequence, result.position.sequence);
    this.#noteCaughtUp();
  }

  #noteCaughtUp(): void {
    if (this.#state.lastContactAt !== undefined && this.#state.position.sequence >= this.#state.headSequence)
      this.#state.caughtUpOnce = true;
  }
}
