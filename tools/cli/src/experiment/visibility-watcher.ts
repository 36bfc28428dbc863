import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { createClient, createTransport, type ClientTlsOptions, type GrpcTransport } from "@shopmesh/sdk";
import { Consistency, UserOrdersService, type GetUserOrdersResponse } from "@shopmesh/sdk/userorders/v1";

/** A write whose appearance in the EVENTUAL view is awaited. */
export interface WatchedWrite {
  /** What the write was (an order id, a user id). */
  key: string;
  /** Whose view shows it. */
  userId: string;
  /** When the writer had the acknowledgement, ms into the run. */
  ackAtMs: number;
  /** Whether an answer shows the write; a NOT_FOUND answer never does. */
  shows(response: GetUserOrdersResponse): boolean;
}

/** When a watched write first appeared. */
export interface Visibility {
  key: string;
  userId: string;
  ackAtMs: number;
  /** When the first answer showing it arrived, ms into the run. */
  seenAtMs: number;
  /** seenAtMs - ackAtMs: the staleness as a reader polling the view sees it (an upper bound). */
  stalenessMs: number;
  /**
   * The uncertainty of that figure: from the later of the acknowledgement and
   * the sending of the last poll that did not show the write, to seenAtMs.
   * The write became visible somewhere in this window.
   */
  windowMs: number;
}

/** Pause between poll rounds while the reader answers. */
const pollIntervalMs = 2;
/** Pause after a round in which every poll failed, as while the reader is down. */
const failurePauseMs = 10;

/**
 * Polls the EVENTUAL views of the users with pending writes, in rounds (one
 * GetUserOrders per such user, in parallel, then a short pause), and records
 * for each write the first answer that shows it. Reading with an admin token
 * over its own channel, which reconnects within tens of milliseconds when
 * user-orders comes back (grpc-js would otherwise back off for seconds and
 * add that to the staleness it measures).
 */
export class VisibilityWatcher {
  readonly #transport: GrpcTransport;
  readonly #client: Client<typeof UserOrdersService>;
  readonly #intervalMs: number;
  readonly #failureIntervalMs: number;
  readonly #pending = new Map<string, WatchedWrite & { lowerMs: number }>();
  readonly #seen: Visibility[] = [];
  #wake: (() => void) | undefined;
  #stopped = false;
  readonly #loop: Promise<void>;
  /**
   * Polls answered after one had failed, ms into the run: the reader
   * answering again. `sentMs` shows when the channel had reconnected, and
   * the difference to `receivedMs` how slowly a freshly started process
   * answers its first calls.
   */
  readonly recoveries: { sentMs: number; receivedMs: number }[] = [];
  #lastFailed = false;

  constructor(
    target: string,
    token: string,
    private readonly runStart: number,
    tls?: ClientTlsOptions,
  ) {
    this.#transport = createTransport({
      target,
      token,
      tls,
      channelOptions: { "grpc.initial_reconnect_backoff_ms": 10, "grpc.max_reconnect_backoff_ms": 50 },
    });
    this.#client = createClient(UserOrdersService, this.#transport);
    this.#intervalMs = pollIntervalMs;
    this.#failureIntervalMs = failurePauseMs;
    this.#loop = this.#run();
  }

  /** The poll interval between rounds while the reader answers. */
  get intervalMs(): number {
    return this.#intervalMs;
  }

  /** Starts watching for `write`. */
  watch(write: WatchedWrite): void {
    this.#pending.set(write.key, { ...write, lowerMs: write.ackAtMs });
    this.#wake?.();
  }

  /** Everything seen so far, in the order seen. */
  get seen(): readonly Visibility[] {
    return this.#seen;
  }

  /** Resolves when every watched write has been seen, or after `timeoutMs`; returns how many were not. */
  async drain(timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    while (this.#pending.size > 0 && performance.now() < deadline) await sleep(5);
    return this.#pending.size;
  }

  /** Stops polling and closes the channel. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
    this.#transport.close();
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      if (this.#pending.size === 0) {
        // Nothing to look for: wait for the next write rather than poll idly.
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = undefined;
        continue;
      }
      const users = [...new Set([...this.#pending.values()].map((w) => w.userId))];
      const answered = await Promise.all(users.map((userId) => this.#poll(userId)));
      await sleep(answered.some(Boolean) ? this.#intervalMs : this.#failureIntervalMs);
    }
  }

  /** One poll of one user's view; true when user-orders answered (NOT_FOUND included). */
  async #poll(userId: string): Promise<boolean> {
    const sentMs = performance.now() - this.runStart;
    let response: GetUserOrdersResponse | undefined;
    try {
      response = await this.#client.getUserOrders(
        { userId, pageSize: 50, consistency: Consistency.EVENTUAL },
        { timeoutMs: 1000 },
      );
    } catch (error) {
      // NOT_FOUND: the projection has not seen the user yet, which is an answer; anything else is not.
      if (ConnectError.from(error).code !== Code.NotFound) {
        this.#lastFailed = true;
        return false;
      }
    }
    const receivedMs = performance.now() - this.runStart;
    if (this.#lastFailed) this.recoveries.push({ sentMs, receivedMs });
    this.#lastFailed = false;
    for (const write of [...this.#pending.values()]) {
      if (write.userId !== userId) continue;
      if (response && write.shows(response)) {
        this.#pending.delete(write.key);
        this.#seen.push({
          key: write.key,
          userId,
          ackAtMs: write.ackAtMs,
          seenAtMs: receivedMs,
          stalenessMs: receivedMs - write.ackAtMs,
          windowMs: receivedMs - write.lowerMs,
        });
      } else {
        write.lowerMs = Math.max(write.lowerMs, sentMs);
      }
    }
    return true;
  }
}
