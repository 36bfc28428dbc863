import {
  create,
  fromBinary,
  toBinary,
  type DescField,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type Database from "better-sqlite3";
import { ConfigError, envReader } from "../config.js";
import { activeTraceContext } from "../tracing/event-tracing.js";
import { AbortFanout } from "./abort-fanout.js";
import { Outbox, type OutboxEntry } from "./outbox.js";
import { defaultStreamLimits, StreamSlots } from "./stream-slots.js";

/** The fields every event envelope in the contracts has (UserEvent, ProductEvent, OrderEvent). */
interface EnvelopeFields {
  sequence: bigint;
  occurTime?: Timestamp;
  kind: { case: string | undefined };
}

/** How an event stream paces itself. */
export interface EventStreamOptions {
  /**
   * Events read from the database at a time, and so the most a stream holds
   * in memory (default 64). A held batch costs its rows and a Buffer each,
   * and a larger one reads no cheaper per row (docs/performance-notes.md).
   */
  batchSize?: number;
  /** How long a stream may stay silent before it sends a heartbeat (default 2 s). */
  heartbeatMs?: number;
  /** Streams open at once, over all callers (default 64). */
  maxStreams?: number;
  /** Streams open at once for one caller, the calling service (default 4). */
  maxStreamsPerCaller?: number;
  /**
   * The services whose certificates may read the stream (EVENTS_READERS,
   * comma-separated), default user-orders, its one consumer.
   */
  readers?: readonly string[];
}

/** Who reads event streams unless EVENTS_READERS says otherwise: user-orders' projection. */
export const defaultEventReaders: readonly string[] = Object.freeze(["user-orders"]);

/** Who a stream is for, and what else ends it. */
export interface FollowOptions {
  /**
   * The hosting server's stopping signal (serverStopping): when it aborts, the
   * stream ends with UNAVAILABLE so that the server can drain and the reader
   * reconnects.
   */
  stopping?: AbortSignal;
  /**
   * The reader (the calling service). The stream then takes one of the log's
   * slots for it, or fails with RESOURCE_EXHAUSTED, and gives it back when
   * it ends, however it ends. An in-process reader (the NATS relay) leaves it
   * out and takes none.
   */
  caller?: string;
}

const defaultBatchSize = 64;

/** A StreamEvents response: the next event, or only the head in a heartbeat. */
export interface EventStreamMessage<Desc extends DescMessage> {
  event?: MessageShape<Desc>;
  headSequence: bigint;
}

/**
 * A service's event log: typed appends into the outbox inside the caller's
 * transaction, and the StreamEvents reading side (replay, then follow).
 */
export class EventLog<Desc extends DescMessage> {
  readonly outbox: Outbox;
  /** The streams open on this log, per caller and in total. */
  readonly slots: StreamSlots;
  readonly #sqlite: Database.Database;
  readonly #batchSize: number;
  readonly #heartbeatMs: number;
  readonly #stopping = new AbortFanout();
  /** The envelope's trace_context field (a shopmesh.type.v1.TraceContext), if it has one. */
  readonly #traceContextField: (DescField & { fieldKind: "message" }) | undefined;

  /** The services that may read the stream (see EventStreamOptions.readers). */
  readonly readers: readonly string[];

  constructor(
    sqlite: Database.Database,
    readonly schema: Desc,
    options: EventStreamOptions = {},
  ) {
    for (const name of ["sequence", "occurTime", "kind"]) {
      if (!schema.fields.some((f) => f.localName === name) && !schema.oneofs.some((o) => o.localName === name)) {
        throw new Error(`${schema.typeName} is not an event envelope: it has no ${name}`);
      }
    }
    this.#traceContextField = schema.fields.find(
      (f): f is DescField & { fieldKind: "message" } => f.localName === "traceContext" && f.fieldKind === "message",
    );
    this.outbox = new Outbox(sqlite);
    this.#sqlite = sqlite;
    this.#batchSize = options.batchSize ?? defaultBatchSize;
    this.#heartbeatMs = options.heartbeatMs ?? 2000;
    this.readers = options.readers ?? defaultEventReaders;
    this.slots = new StreamSlots({
      maxStreams: options.maxStreams ?? defaultStreamLimits.maxStreams,
      maxStreamsPerCaller: options.maxStreamsPerCaller ?? defaultStreamLimits.maxStreamsPerCaller,
    });
  }

  /**
   * Records an event. Call it inside the transaction that makes the change it
   * describes. The sequence number is assigned here; the commit time is
   * `occurredAt`. When the change is traced (a handler's span is active),
   * its trace context is stored beside the event and read back into the
   * envelope's trace_context, so that a reader can link to it.
   */
  append(event: MessageInitShape<Desc>, occurredAt: number = Date.now()): number {
    const message = create(this.schema, event) as MessageShape<Desc> & EnvelopeFields;
    message.sequence = 0n;
    message.occurTime = timestampFromMs(occurredAt);
    // The outbox's own columns hold the trace context, never the payload.
    const field = this.#traceContextField;
    if (field !== undefined) (message as unknown as Record<string, unknown>)[field.localName] = undefined;
    const payload = toBinary(this.schema, message);
    return this.outbox.append(message.kind.case ?? "unknown", payload, occurredAt, activeTraceContext());
  }

  /**
   * Gives a database written before its outbox existed a history: when the
   * outbox is empty, appends the events `history` yields (one creation event
   * per existing row, oldest first), all in one transaction with the check,
   * so that readers of a fresh stream still see every row. Does nothing once
   * the outbox holds anything. Returns how many events it appended.
   */
  backfill(history: () => Iterable<{ event: MessageInitShape<Desc>; occurredAt: number }>): number {
    return this.#sqlite.transaction(() => {
      if (this.outbox.head() > 0) return 0;
      let appended = 0;
      for (const { event, occurredAt } of history()) {
        this.append(event, occurredAt);
        appended++;
      }
      return appended;
    })();
  }

  /** A stored event as its envelope, sequence number and the producing write's trace context included. */
  decode(entry: OutboxEntry): MessageShape<Desc> {
    const message = fromBinary(this.schema, entry.payload) as MessageShape<Desc> & EnvelopeFields;
    message.sequence = BigInt(entry.sequence);
    const field = this.#traceContextField;
    if (field !== undefined && entry.traceparent) {
      const producer = { traceparent: entry.traceparent, tracestate: entry.tracestate ?? "" };
      (message as unknown as Record<string, unknown>)[field.localName] = create(field.message, producer);
    }
    return message;
  }

  /**
   * The events after `afterSequence`, then new ones as they commit, until
   * `callSignal` aborts. The first message is a heartbeat carrying the head,
   * so a reader knows at once that it is connected and how far behind it is.
   *
   * Reading follows demand: a batch is read from the database only when the
   * previous one has been taken, and the server hosting this generator waits
   * for the transport to drain before taking the next message. A reader that
   * stops reading therefore holds at most one batch here and a flow-control
   * window in the transport, however many events pile up behind it.
   *
   * The stream never ends on its own; see {@link FollowOptions} for the
   * server stopping and for the slot a caller's stream takes. Whatever ends
   * it (abort, an error, or the consumer returning early) removes its
   * listeners and timer and gives its slot back.
   */
  async *follow(
    afterSequence: bigint | number,
    callSignal: AbortSignal,
    options: FollowOptions = {},
  ): AsyncGenerator<EventStreamMessage<Desc>> {
    const { stopping, caller } = options;
    const release = caller === undefined ? undefined : this.slots.acquire(caller);
    // The call's end or the server's stop ends the stream. The server-wide
    // `stopping` signal outlives every stream: see AbortFanout.
    const linked = new AbortController();
    const end = () => linked.abort();
    if (callSignal.aborted) end();
    else callSignal.addEventListener("abort", end, { once: true });
    const unsubscribe = stopping ? this.#stopping.subscribe(stopping, end) : undefined;
    const signal = linked.signal;
    try {
      const head = this.outbox.head();
      // Compared as sent: past 2^53 a number would round (2^64 - 1 read as 18446744073709552000).
      if (afterSequence > BigInt(head)) {
        throw new ConnectError(
          `after_sequence ${afterSequence} is beyond the newest event ${head}: this log is not the one the reader followed`,
          Code.OutOfRange,
        );
      }
      let position = Number(afterSequence);
      yield { headSequence: BigInt(head) };
      while (!signal.aborted) {
        const entries = this.outbox.after(position, this.#batchSize);
        if (entries.length === 0) {
          const appended = await this.outbox.nextAppend(this.#heartbeatMs, signal);
          if (!appended && !signal.aborted) yield { headSequence: BigInt(this.outbox.head()) };
          continue;
        }
        const headSequence = BigInt(Math.max(this.outbox.head(), entries.at(-1)!.sequence));
        for (const entry of entries) {
          if (signal.aborted) break;
          position = entry.sequence;
          yield { event: this.decode(entry), headSequence };
        }
      }
      // The server is stopping: end with a status a reader retries, elsewhere or later.
      if (stopping?.aborted && !callSignal.aborted)
        throw new ConnectError("the server is shutting down; reconnect", Code.Unavailable);
    } finally {
      callSignal.removeEventListener("abort", end);
      unsubscribe?.();
      release?.();
    }
  }
}

/**
 * Event stream settings from the environment: EVENTS_BATCH (64),
 * EVENTS_HEARTBEAT (2s, from 10ms to 24h), EVENTS_MAX_STREAMS (64) and
 * EVENTS_MAX_STREAMS_PER_CALLER (4).
 */
export function readEventStreamOptions(env: Record<string, string | undefined> = process.env): EventStreamOptions {
  const read = envReader(env);
  // An idle stream waits heartbeatMs between heartbeats: 0 would send them in a busy loop.
  const heartbeatMs = read.durationMs("EVENTS_HEARTBEAT", "2s", { min: 10, max: 86_400_000 });
  return {
    batchSize: read.int("EVENTS_BATCH", defaultBatchSize, { min: 1, max: 10_000 }),
    heartbeatMs,
    maxStreams: read.int("EVENTS_MAX_STREAMS", defaultStreamLimits.maxStreams, { min: 1, max: 100_000 }),
    maxStreamsPerCaller: read.int("EVENTS_MAX_STREAMS_PER_CALLER", defaultStreamLimits.maxStreamsPerCaller, {
      min: 1,
      max: 100_000,
    }),
    readers: readReaders(read.optionalString("EVENTS_READERS")),
  };
}

function readReaders(text: string | undefined): readonly string[] {
  if (text === undefined) return defaultEventReaders;
  const names = text.split(",").map((name) => name.trim());
  if (names.some((name) => !/^[a-z][a-z0-9-]*$/.test(name)))
    throw new ConfigError("EVENTS_READERS", text, "service names separated by commas, e.g. user-orders");
  return names;
}
