import { setTimeout as sleep } from "node:timers/promises";
import { toBinary, type DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ExponentialBackoff, type IBackoff } from "cockatiel";
import { DiscardPolicy, headers, nanos, RetentionPolicy, StorageType, type JetStreamManager } from "nats";
import type { Logger } from "../logger.js";
import type { ProducerTraceContext } from "../tracing/event-tracing.js";
import { apiErrorCode, connectToNats, jetStreamErrors, lastRelayed, setTraceContextHeaders } from "./jetstream.js";
import { natsEventNames, outboxSequenceHeader, type NatsEventNames, type NatsSettings } from "./nats-settings.js";
import type { EventLog } from "./event-log.js";

/** What a relay reports about itself. */
export interface NatsRelayState {
  connected: boolean;
  /** The newest outbox sequence known to be in JetStream. */
  position: number;
  /** Messages JetStream stored since the relay started. */
  published: number;
  /** Messages JetStream recognised as already stored (by Nats-Msg-Id). */
  duplicates: number;
  /** Sessions that failed since the last one that connected. */
  failures: number;
}

/** Options for {@link startNatsRelay}. */
export interface NatsRelayOptions<Desc extends DescMessage> extends NatsSettings {
  /** The producing service, e.g. "users": names the stream and subject. */
  service: string;
  eventLog: EventLog<Desc>;
  logger: Logger;
  /** First delay after a failure (default 200 ms); grows with jitter up to `maxBackoffMs` (default 5 s). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** How long one publish may wait for its ack (default 5 s). */
  ackTimeoutMs?: number;
  /** Servers that keep a copy of the stream when the relay creates it (default 1). */
  streamReplicas?: number;
}

/** A running relay. */
export interface NatsRelay {
  readonly names: NatsEventNames;
  state(): NatsRelayState;
  /** Stops relaying; resolves once the connection is closed. Never rejects. */
  close(): Promise<void>;
}

/** How long JetStream remembers a Nats-Msg-Id; a relay restarted within it cannot store a duplicate. */
const duplicateWindowMs = 2 * 60_000;

/**
 * Copies a service's outbox to a JetStream stream, in order, for readers
 * that should not hold a connection to the service itself.
 *
 * The relay keeps no state of its own: each session asks JetStream for the
 * last message on the subject and resumes after the outbox sequence in its
 * header. Every publish waits for its ack before the next, carries a
 * Nats-Msg-Id (so a publish repeated after a lost ack is stored once) and
 * expects the subject's last stream sequence to be the one this session last
 * saw (so a second relay writing at the same time makes one of them start
 * over from JetStream's state instead of interleaving). Together: no event is
 * lost, none is stored twice, and the order is the outbox's. A message
 * carries the trace context of the write that produced it, when that write
 * was traced, in its envelope and in `traceparent`/`tracestate` headers.
 *
 * NATS is optional for the service: when it is down or refuses, the relay
 * logs, waits (exponential backoff with jitter, reset by a session that
 * connects) and tries again; it never throws into the service.
 */
export function startNatsRelay<Desc extends DescMessage>(options: NatsRelayOptions<Desc>): NatsRelay {
  const names = natsEventNames(options.service, options.prefix);
  const log = options.logger.child({ component: "nats-relay", stream: names.stream });
  const abort = new AbortController();
  const state: NatsRelayState = { connected: false, position: 0, published: 0, duplicates: 0, failures: 0 };
  const factory = new ExponentialBackoff({
    initialDelay: options.initialBackoffMs ?? 200,
    maxDelay: options.maxBackoffMs ?? 5000,
  });

  const running = (async () => {
    let backoff: IBackoff<unknown> | undefined;
    while (!abort.signal.aborted) {
      try {
        const onConnected = () => {
          state.failures = 0;
          backoff = undefined;
        };
        await relaySession({ ...options, names, state, log, signal: abort.signal, onConnected });
      } catch (error) {
        if (abort.signal.aborted) break;
        state.failures++;
        logFailure(log, error, state.failures);
      }
      if (abort.signal.aborted) break;
      backoff = backoff ? backoff.next(undefined) : factory.next();
      await sleep(backoff.duration, undefined, { signal: abort.signal }).catch(() => undefined);
    }
  })();

  return {
    names,
    state: () => ({ ...state }),
    async close() {
      abort.abort();
      await running;
    },
  };
}

/** The first failure in a row is a warning; later ones, while NATS stays down, are quieter. */
function logFailure(log: Logger, error: unknown, failures: number): void {
  if (error instanceof ConnectError && error.code === Code.OutOfRange) {
    log.error(
      { err: error.message },
      "JetStream holds events this outbox does not have: the stream belongs to another database; use another EVENTS_NATS_PREFIX",
    );
    return;
  }
  const fields = { err: error instanceof Error ? error.message : String(error), failures };
  if (failures === 1) log.warn(fields, "event relay to NATS failed; retrying");
  else log.info(fields, "event relay to NATS still failing; retrying");
}

interface SessionContext<Desc extends DescMessage> extends NatsRelayOptions<Desc> {
  names: NatsEventNames;
  state: NatsRelayState;
  log: Logger;
  signal: AbortSignal;
  onConnected: () => void;
}

/**
 * One connection's worth of relaying: connect, make sure the stream exists,
 * find where JetStream is, then follow the outbox until the connection or the
 * relay ends. Resolves only when the relay is closed; otherwise throws.
 */
async function relaySession<Desc extends DescMessage>(context: SessionContext<Desc>): Promise<void> {
  const { names, state, log, eventLog, signal } = context;
  // A fresh session per connection starts again from JetStream's last message.
  const nc = await connectToNats(context.servers, `shopmesh-${context.service}-relay`);
  const session = new AbortController();
  const stop = () => session.abort(signal.reason);
  signal.addEventListener("abort", stop, { once: true });
  if (signal.aborted) stop(); // closed while connecting
  void nc.closed().then((error) => session.abort(error ?? new Error("NATS connection closed")));
  try {
    const jsm = await nc.jetstreamManager();
    await ensureStream(jsm, names, context.streamReplicas ?? 1);
    const last = await lastRelayed(jsm, names);
    const js = nc.jetstream({ timeout: context.ackTimeoutMs ?? 5000 });
    let subjectSequence = last.streamSequence;
    let following = false;
    for await (const message of eventLog.follow(last.outboxSequence, session.signal)) {
      // The first message (a heartbeat) means the outbox accepted the position:
      // only now is the session good enough to reset the backoff.
      if (!following) {
        following = true;
        state.connected = true;
        state.position = Number(last.outboxSequence);
        context.onConnected();
        log.info({ subject: names.subject, after: last.outboxSequence }, "relaying events to NATS JetStream");
      }
      if (!message.event) continue;
      // EventLog checked at construction that the envelope has a sequence
      // field; it fills trace_context, when the envelope has one, from the outbox.
      const { sequence, traceContext } = message.event as unknown as {
        sequence: bigint;
        traceContext?: ProducerTraceContext;
      };
      const header = headers();
      header.set(outboxSequenceHeader, sequence.toString());
      setTraceContextHeaders(header, traceContext);
      const ack = await js.publish(names.subject, toBinary(eventLog.schema, message.event), {
        msgID: `${names.subject}:${sequence}`,
        headers: header,
        // 0 means "no message yet", which nats.js does not send as an expectation.
        expect: { lastSubjectSequence: subjectSequence },
      });
      if (ack.duplicate) state.duplicates++;
      else state.published++;
      subjectSequence = ack.seq;
      state.position = Number(sequence);
    }
    if (!signal.aborted) throw session.signal.reason ?? new Error("NATS connection closed");
  } finally {
    state.connected = false;
    signal.removeEventListener("abort", stop);
    await nc.close().catch(() => undefined);
  }
}

/**
 * Creates the stream when it is missing (file storage, kept without limit
 * like the outbox), with `replicas` copies. An existing stream keeps the
 * replica count it was made with.
 */
async function ensureStream(jsm: JetStreamManager, names: NatsEventNames, replicas: number): Promise<void> {
  try {
    const info = await jsm.streams.info(names.stream);
    if (!info.config.subjects?.includes(names.subject)) {
      throw new Error(
        `stream ${names.stream} exists but does not take ${names.subject}; is another mesh using this prefix?`,
      );
    }
  } catch (error) {
    if (apiErrorCode(error) !== jetStreamErrors.streamNotFound) throw error;
    await jsm.streams.add({
      name: names.stream,
      description: `shopmesh events relayed from the outbox (${names.subject})`,
      subjects: [names.subject],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      num_replicas: replicas,
      duplicate_window: nanos(duplicateWindowMs),
    });
  }
}
