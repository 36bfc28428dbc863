import type Database from "better-sqlite3";
import type { ProducerTraceContext } from "../tracing/event-tracing.js";

/** One stored event. */
export interface OutboxEntry {
  sequence: number;
  occurredAt: number;
  payload: Uint8Array;
  /** The trace context of the write that appended it, null (or absent) when it was not traced. */
  traceparent?: string | null;
  tracestate?: string | null;
}

/**
 * The outbox table (see outbox-table.ts) of one database: appends inside the
 * caller's transaction, reads in sequence order, and wakes readers waiting
 * for the next append.
 *
 * Only the owning process writes, through one better-sqlite3 connection whose
 * transactions run synchronously, so by the time a queued microtask runs, the
 * transaction that appended has committed (or rolled back, and a woken
 * reader finds nothing new).
 */
export class Outbox {
  readonly #insert;
  readonly #after;
  readonly #head;
  readonly #waiters = new Set<() => void>();
  #wakeQueued = false;
  #rowsRead = 0;

  /** Readers waiting for the next append now; lets tests see that a reader that went away left nothing behind. */
  get waiting(): number {
    return this.#waiters.size;
  }

  /** Rows read by every reader together; lets tests see that reading follows demand. */
  get rowsRead(): number {
    return this.#rowsRead;
  }

  constructor(sqlite: Database.Database) {
    this.#insert = sqlite.prepare<
      [kind: string, occurredAt: number, payload: Uint8Array, traceparent: string | null, tracestate: string | null]
    >("INSERT INTO outbox (kind, occurred_at, payload, traceparent, tracestate) VALUES (?, ?, ?, ?, ?)");
    this.#after = sqlite.prepare<[after: number, limit: number], OutboxEntry>(
      `SELECT sequence, occurred_at AS occurredAt, payload, traceparent, tracestate
         FROM outbox WHERE sequence > ? ORDER BY sequence LIMIT ?`,
    );
    this.#head = sqlite.prepare<[], { head: number | null }>("SELECT max(sequence) AS head FROM outbox");
  }

  /**
   * Appends an event. Call it inside the transaction that makes the change,
   * so that both commit or neither does, with the trace context of that
   * change when it is traced. Returns the event's sequence number.
   */
  append(kind: string, payload: Uint8Array, occurredAt: number, producer?: ProducerTraceContext): number {
    const { lastInsertRowid } = this.#insert.run(
      kind,
      occurredAt,
      payload,
      producer?.traceparent ?? null,
      producer?.tracestate || null,
    );
    if (!this.#wakeQueued && this.#waiters.size > 0) {
      this.#wakeQueued = true;
      queueMicrotask(() => this.#wake());
    }
    return Number(lastInsertRowid);
  }

  /** Up to `limit` events after `sequence`, oldest first. */
  after(sequence: number, limit: number): OutboxEntry[] {
    const rows = this.#after.all(sequence, limit);
    this.#rowsRead += rows.length;
    return rows;
  }

  /** The newest sequence number, or 0 when the outbox is empty. */
  head(): number {
    return this.#head.get()?.head ?? 0;
  }

  /**
   * Resolves true after the next append commits, false after `timeoutMs`
   * without one or when `signal` aborts. Registers synchronously: an append
   * made after this call returns is never missed.
   */
  nextAppend(timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (appended: boolean) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        this.#waiters.delete(onAppend);
        resolve(appended);
      };
      const onAppend = () => done(true);
      const onAbort = () => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      signal.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(onAppend);
    });
  }

  #wake(): void {
    this.#wakeQueued = false;
    for (const waiter of [...this.#waiters]) waiter();
  }
}
