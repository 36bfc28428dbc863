// What the outbox relay and a JetStream reader share: how a connection is
// opened, which API errors they react to, and how a relayed message carries
// its outbox sequence. Imports the NATS client, so it is a subpath of its own
// ("@shopmesh/chassis/jetstream"): only a process that uses NATS loads it.
import { connect, type JetStreamManager, type MsgHdrs, type NatsConnection } from "nats";
import type { ProducerTraceContext } from "../tracing/event-tracing.js";
import { outboxSequenceHeader, type NatsEventNames } from "./nats-settings.js";

/**
 * Opens a connection with NATS's own reconnect off: while it reconnects, a
 * publish or a pull neither fails nor succeeds for a while. The caller opens
 * a fresh connection instead and resumes from JetStream's state, which is
 * simpler to reason about. Pings every 10 s find a dead server within 30 s.
 */
export function connectToNats(servers: string | string[], name: string): Promise<NatsConnection> {
  return connect({ servers, name, reconnect: false, timeout: 2000, pingInterval: 10_000, maxPingOut: 2 });
}

/** JetStream API error codes the relay and the reader react to. */
export const jetStreamErrors = { streamNotFound: 10059, noMessageFound: 10037, consumerNotFound: 10014 } as const;

/** The JetStream API error code of a failed request, if it has one. */
export function apiErrorCode(error: unknown): number | undefined {
  return (error as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code;
}

/** The outbox sequence a relayed message carries in its header; an error names the message that lacks it. */
export function outboxSequenceOf(header: string | undefined, names: NatsEventNames, streamSequence: number): bigint {
  if (header === undefined || !/^\d+$/.test(header)) {
    throw new Error(
      `${names.stream}: message at stream sequence ${streamSequence} has no ${outboxSequenceHeader} header; only the relay may publish to ${names.subject}`,
    );
  }
  return BigInt(header);
}

/** The newest relayed event: its outbox and stream sequences, both 0 when there is none (or no stream yet). */
export async function lastRelayed(
  jsm: JetStreamManager,
  names: NatsEventNames,
): Promise<{ outboxSequence: bigint; streamSequence: number }> {
  try {
    const last = await jsm.streams.getMessage(names.stream, { last_by_subj: names.subject });
    return {
      outboxSequence: outboxSequenceOf(last.header.get(outboxSequenceHeader), names, last.seq),
      streamSequence: last.seq,
    };
  } catch (error) {
    const code = apiErrorCode(error);
    if (code === jetStreamErrors.noMessageFound || code === jetStreamErrors.streamNotFound)
      return { outboxSequence: 0n, streamSequence: 0 };
    throw error;
  }
}

/**
 * Puts the producing write's trace context in a relayed message's headers,
 * under the W3C names (`traceparent`, `tracestate`), where any NATS consumer
 * that propagates trace context looks for it.
 */
export function setTraceContextHeaders(header: MsgHdrs, producer: ProducerTraceContext | undefined): void {
  if (!producer?.traceparent) return;
  header.set("traceparent", producer.traceparent);
  if (producer.tracestate) header.set("tracestate", producer.tracestate);
}

/** The trace context a relayed message's headers carry, if any. */
export function traceContextFromHeaders(header: MsgHdrs | undefined): ProducerTraceContext | undefined {
  const traceparent = header?.get("traceparent");
  if (!traceparent) return undefined;
  return { traceparent, tracestate: header?.get("tracestate") ?? "" };
}
