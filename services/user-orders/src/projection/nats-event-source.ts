import { create, fromBinary } from "@bufbuild/protobuf";
import { natsEventNames, outboxSequenceHeader, type NatsEventNames, type NatsSettings } from "@shopmesh/chassis";
import { OrderEventSchema } from "@shopmesh/sdk/orders/v1";
import { ProductEventSchema } from "@shopmesh/sdk/products/v1";
import { TraceContextSchema } from "@shopmesh/sdk/type/v1";
import { UserEventSchema } from "@shopmesh/sdk/users/v1";
import {
  apiErrorCode,
  connectToNats,
  jetStreamErrors,
  lastRelayed,
  outboxSequenceOf,
  traceContextFromHeaders,
} from "@shopmesh/chassis/jetstream";
import { AckPolicy, DeliverPolicy, nanos, type JsMsg, type NatsConnection } from "nats";
import type { DependencyName } from "../dependencies.js";
import type { EventSource, SourceMessage, StreamEvents } from "./event-source.js";

/** Options for {@link natsEventSource}: the servers and the producers' prefix (NatsSettings), and how to read. */
export interface NatsEventSourceOptions extends NatsSettings {
  /** Silence after which a head-only heartbeat is yielded (default 2 s; at least 1 s, nats.js's shortest pull). */
  heartbeatMs?: number;
  /** Most messages pulled at a time, and so the most one open stream holds unread (default 256). */
  batchSize?: number;
}

const schemas = { users: UserEventSchema, products: ProductEventSchema, orders: OrderEventSchema } as const;

/**
 * The projection's source over NATS JetStream, with the same guarantees as
 * the gRPC one (see {@link EventSource}): events above `afterSequence`, in
 * increasing order, each at least once, then new ones until `signal` aborts;
 * the iterator throws when the connection or the consumer fails, and the
 * reader reopens after its own position.
 *
 * One NATS connection is shared by every open stream, without nats.js's
 * automatic reconnect: a lost connection fails every open iterator at once,
 * and the next `open` connects again. Retrying is the reader's job; a
 * reconnecting client would instead leave iterators silent for a while.
 *
 * Each `open` makes its own ephemeral pull consumer (memory storage, no acks,
 * deleted when done, and by the server after five idle minutes) starting at
 * stream sequence `afterSequence + 1`. That is where the outbox sequence is
 * while the relay is the stream's only publisher; the outbox sequence header
 * decides, so anything at or below what was asked is skipped and a jump
 * fails with the sequences that are missing.
 *
 * Memory is bounded by pulling: one fetch of at most `batchSize` messages is
 * outstanding, and the next is asked for only after the reader has taken
 * every message of this one, so a slow reader holds one batch here however
 * far behind it is. (Not nats.js's ordered consumer: it recreates its
 * consumer by itself and waits through a lost connection instead of failing,
 * which hides exactly what the reader needs to hear.)
 */
export function natsEventSource(options: NatsEventSourceOptions): EventSource {
  const heartbeatMs = Math.max(1000, options.heartbeatMs ?? 2000);
  const batchSize = options.batchSize ?? 256;
  let connection: Promise<Connection> | undefined;
  let closed = false;

  const connected = async (): Promise<Connection> => {
    if (closed) throw new Error("the NATS event source is closed");
    const pending = connection;
    if (pending) {
      const current = await pending.catch(() => undefined);
      if (current && !current.nc.isClosed()) return current;
      // Another open may have replaced the dead connection meanwhile: share that one.
      if (connection !== pending) return connected();
    }
    connection = (async () => {
      const nc = await connectToNats(options.servers, "shopmesh-user-orders-events");
      const lost = new AbortController();
      void nc.closed().then((error) => lost.abort(error ?? new Error("NATS connection closed")));
      return { nc, lost: lost.signal };
    })();
    return connection;
  };

  return {
    kind: "nats",
    open<S extends DependencyName>(
      stream: S,
      afterSequence: bigint,
      signal: AbortSignal,
    ): AsyncIterable<SourceMessage<S>> {
      return readStream({
        stream,
        afterSequence,
        signal,
        heartbeatMs,
        batchSize,
        names: natsEventNames(stream, options.prefix),
        connected,
      });
    },
    close() {
      closed = true;
      void connection?.then(({ nc }) => nc.close()).catch(() => undefined);
      connection = undefined;
    },
  };
}

/** The shared connection, and a signal that aborts when it is lost. */
interface Connection {
  nc: NatsConnection;
  lost: AbortSignal;
}

interface ReadOptions<S extends DependencyName> {
  stream: S;
  afterSequence: bigint;
  signal: AbortSignal;
  heartbeatMs: number;
  batchSize: number;
  names: NatsEventNames;
  connected: () => Promise<Connection>;
}

async function* readStream<S extends DependencyName>(options: ReadOptions<S>): AsyncGenerator<SourceMessage<S>> {
  const { stream, afterSequence, signal, names } = options;
  if (signal.aborted) return;
  // Everything below fails promptly once the shared connection is lost.
  const { nc, lost } = await options.connected();
  const jsm = await nc.jetstreamManager();

  let head = (await lastRelayed(jsm, names)).outboxSequence;
  if (signal.aborted) return;
  if (afterSequence > head) {
    throw new Error(
      `${names.stream}: after sequence ${afterSequence} is beyond the newest event ${head}; this stream is not the one the reader followed`,
    );
  }
  // Like StreamEvents: the first message says "connected" and how far behind the reader is.
  yield { headSequence: head };

  const info = await jsm.consumers
    .add(names.stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Number(afterSequence) + 1,
      filter_subject: names.subject,
      ack_policy: AckPolicy.None,
      mem_storage: true,
      num_replicas: 1,
      inactive_threshold: nanos(5 * 60_000),
    })
    .catch((error: unknown) => {
      throw apiErrorCode(error) === jetStreamErrors.streamNotFound
        ? new Error(
            `stream ${names.stream} does not exist: is ${stream} running with EVENTS_RELAY=nats and this EVENTS_NATS_PREFIX?`,
          )
        : error;
    });
  const consumer = nc.jetstream().consumers.getPullConsumerFor(info);
  const schema = schemas[stream];
  let expected = afterSequence + 1n;
  let lastYield = Date.now();
  try {
    while (!signal.aborted) {
      const batch = await consumer.fetch({ max_messages: options.batchSize, expires: options.heartbeatMs });
      const onAbort = () => batch.stop();
      const onLost = () => batch.stop(asError(lost.reason));
      signal.addEventListener("abort", onAbort, { once: true });
      lost.addEventListener("abort", onLost, { once: true });
      if (lost.aborted) onLost();
      try {
        for await (const message of batch) {
          const sequence = outboxSequence(message, names);
          if (sequence < expected) continue;
          if (sequence > expected) {
            throw new Error(
              `${names.stream}: events ${expected}..${sequence - 1n} are missing (stream sequence ${message.info.streamSequence} carries ${sequence})`,
            );
          }
          // The envelope type of this stream; TypeScript cannot follow S through the schema lookup.
          const event = fromBinary(schema, message.data) as unknown as StreamEvents[S];
          if (event.sequence !== sequence) {
            if (event.sequence !== 0n)
              throw new Error(`${names.stream}: envelope sequence ${event.sequence} differs from header ${sequence}`);
            event.sequence = sequence;
          }
          // The W3C headers are NATS's own carrier of trace context: they decide.
          const producer = traceContextFromHeaders(message.headers);
          if (producer) event.traceContext = create(TraceContextSchema, producer);
          expected = sequence + 1n;
          // num_pending counts the messages after this one, so the head is
          // this sequence plus that many (one message per outbox event).
          const pendingHead = sequence + BigInt(message.info.pending);
          if (pendingHead > head) head = pendingHead;
          yield { event, headSequence: head };
          lastYield = Date.now();
        }
      } finally {
        signal.removeEventListener("abort", onAbort);
        lost.removeEventListener("abort", onLost);
        batch.stop();
      }
      if (signal.aborted) return;
      if (lost.aborted) throw asError(lost.reason);
      if (Date.now() - lastYield >= options.heartbeatMs) {
        // A pull from a consumer that no longer exists just expires, like an
        // idle one: ask for the consumer, so a deleted one fails the reader.
        // Asking for the head also shows that JetStream still answers.
        await consumer.info().catch((error: unknown) => {
          throw apiErrorCode(error) === jetStreamErrors.consumerNotFound
            ? new Error(`${names.stream}: the reader's consumer ${info.name} is gone`)
            : error;
        });
        const latest = (await lastRelayed(jsm, names)).outboxSequence;
        if (latest > head) head = latest;
        yield { headSequence: head };
        lastYield = Date.now();
      }
    }
  } finally {
    if (!nc.isClosed()) void consumer.delete().catch(() => undefined);
  }
}

function outboxSequence(message: JsMsg, names: NatsEventNames): bigint {
  return outboxSequenceOf(message.headers?.get(outboxSequenceHeader), names, message.info.streamSequence);
}

function asError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason ?? "NATS connection closed"));
}
