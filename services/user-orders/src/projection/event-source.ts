import type { Client } from "@connectrpc/connect";
import { envReader, readNatsSettings, type NatsSettings } from "@shopmesh/chassis";
import type { OrderEvent, OrdersService } from "@shopmesh/sdk/orders/v1";
import type { ProductEvent, ProductsService } from "@shopmesh/sdk/products/v1";
import type { UserEvent, UsersService } from "@shopmesh/sdk/users/v1";
import type { DependencyName } from "../dependencies.js";

/** The event envelope each stream carries. */
export interface StreamEvents {
  users: UserEvent;
  products: ProductEvent;
  orders: OrderEvent;
}

/** One message of a source stream: the next event, or only the head (a heartbeat). */
export interface SourceMessage<S extends DependencyName> {
  event?: StreamEvents[S];
  /** The newest sequence number the source had when it sent this. */
  headSequence: bigint;
}

/**
 * Where the projection reads events from. Every implementation gives the
 * same guarantees: `open` yields the stream's events with sequence numbers
 * above `afterSequence`, in increasing order, then follows new ones until
 * `signal` aborts or the connection fails (the iterator then throws). It may
 * yield an event the reader already has (at-least-once); the reader skips it
 * by its sequence number.
 */
export interface EventSource {
  readonly kind: string;
  open<S extends DependencyName>(
    stream: S,
    afterSequence: bigint,
    signal: AbortSignal,
  ): AsyncIterable<SourceMessage<S>>;
  close(): void;
}

/**
 * The default source: each service's own StreamEvents RPC, over clients whose
 * transports present user-orders' certificate (mutual TLS).
 */
export function grpcEventSource(options: {
  clients: {
    users: Client<typeof UsersService>;
    products: Client<typeof ProductsService>;
    orders: Client<typeof OrdersService>;
  };
}): EventSource {
  return {
    kind: "grpc",
    open(stream, afterSequence, signal) {
      const client = options.clients[stream] as Client<typeof UsersService>;
      return client.streamEvents({ afterSequence }, { signal }) as AsyncIterable<SourceMessage<typeof stream>>;
    },
    close() {},
  };
}

/** Where the projection reads events from: EVENTS_SOURCE, and for nats NATS_URL and EVENTS_NATS_PREFIX. */
export type EventSourceConfig = { kind: "grpc" } | ({ kind: "nats" } & NatsSettings);

/** EVENTS_SOURCE = grpc (default: each service's StreamEvents) | nats (JetStream, fed by the services' relays). */
export function readEventSourceConfig(env: Record<string, string | undefined> = process.env): EventSourceConfig {
  const kind = envReader(env).oneOf("EVENTS_SOURCE", ["grpc", "nats"] as const, "grpc");
  if (kind === "grpc") return { kind };
  return { kind, ...readNatsSettings(env) };
}
