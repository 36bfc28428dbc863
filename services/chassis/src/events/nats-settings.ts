// Where a service's events live in NATS JetStream, and the settings that
// say so. Kept apart from the relay and the reader so that reading the
// configuration does not load the NATS client: most processes never use it.
import { ConfigError, envReader } from "../config.js";

/**
 * The header every relayed message carries: the event's outbox sequence
 * number. JetStream's own stream sequence matches it only while the relay is
 * the stream's only publisher and nothing was purged, so readers trust this.
 */
export const outboxSequenceHeader = "Shopmesh-Outbox-Sequence";

/** Where one service's events live in JetStream. */
export interface NatsEventNames {
  /** e.g. SHOPMESH_USERS */
  stream: string;
  /** e.g. shopmesh.users.v1.events */
  subject: string;
}

const prefixPattern = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/**
 * The stream and subject of a service's events under a prefix. Several meshes
 * can share one nats-server by using different prefixes: both the stream name
 * and the subject contain the prefix, so neither collides. The prefix is
 * lower case, so upper-casing it for the stream name loses nothing.
 */
export function natsEventNames(service: string, prefix: string): NatsEventNames {
  if (!prefixPattern.test(prefix))
    throw new Error(`NATS prefix ${JSON.stringify(prefix)} is not lower-case letters, digits, "_" or "-"`);
  return {
    stream: `${prefix}_${service}`.toUpperCase(),
    subject: `${prefix}.${service}.v1.events`,
  };
}

/** How to reach NATS: NATS_URL and EVENTS_NATS_PREFIX. */
export interface NatsSettings {
  /** One or more server URLs (NATS_URL, comma-separated; default nats://127.0.0.1:4222). */
  servers: string[];
  /** Prefix of stream names and subjects (EVENTS_NATS_PREFIX, default "shopmesh"). */
  prefix: string;
}

const serverPattern = /^(?:(?:nats|tls|ws|wss):\/\/)?[^\s/,]+:\d+$/;

/** Reads NATS_URL and EVENTS_NATS_PREFIX, shared by the relay and the user-orders reader. */
export function readNatsSettings(env: Record<string, string | undefined> = process.env): NatsSettings {
  const read = envReader(env);
  const url = read.string("NATS_URL", "nats://127.0.0.1:4222");
  const servers = url.split(",").map((s) => s.trim());
  if (servers.some((server) => !serverPattern.test(server))) {
    throw new ConfigError("NATS_URL", url, "NATS server URLs such as nats://127.0.0.1:4222, separated by commas");
  }
  const prefix = read.string("EVENTS_NATS_PREFIX", "shopmesh");
  if (!prefixPattern.test(prefix)) {
    throw new ConfigError("EVENTS_NATS_PREFIX", prefix, 'lower-case letters, digits, "_" or "-", at most 64');
  }
  return { servers, prefix };
}

/** Whether a producer relays its outbox, and where to. */
export type EventsRelayConfig =
  | { kind: "none" }
  | ({
      kind: "nats";
      /**
       * Servers that keep a copy of a stream the relay creates
       * (EVENTS_STREAM_REPLICAS, default 1). With 3 on a three-server cluster
       * the stream outlives any one server.
       */
      streamReplicas: number;
    } & NatsSettings);

/** EVENTS_RELAY = none (default) | nats, with NATS_URL, EVENTS_NATS_PREFIX and EVENTS_STREAM_REPLICAS for nats. */
export function readEventsRelayConfig(env: Record<string, string | undefined> = process.env): EventsRelayConfig {
  const read = envReader(env);
  const kind = read.oneOf("EVENTS_RELAY", ["none", "nats"] as const, "none");
  if (kind === "none") return { kind };
  // JetStream allows at most 5 replicas of a stream.
  return { kind, streamReplicas: read.int("EVENTS_STREAM_REPLICAS", 1, { min: 1, max: 5 }), ...readNatsSettings(env) };
}
