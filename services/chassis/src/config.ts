/**
 * Reading configuration from environment variables. Every reader takes the
 * variable's name and a default, and a bad value fails start-up with an error
 * that names the variable, the value and what was expected.
 */
import { isGrpcTarget } from "@shopmesh/sdk";

/** A configuration value that could not be used. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    readonly value: string,
    expected: string,
  ) {
    super(`${variable}=${JSON.stringify(value)} is not valid: expected ${expected}`);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

/** Typed readers over an environment (process.env unless given). */
export interface EnvReader {
  string(name: string, fallback: string): string;
  optionalString(name: string): string | undefined;
  int(name: string, fallback: number, range?: { min?: number; max?: number }): number;
  number(name: string, fallback: number, range?: { min?: number; max?: number }): number;
  bool(name: string, fallback: boolean): boolean;
  /**
   * A duration such as "250ms", "10s", "2m" or a bare number of milliseconds;
   * returns milliseconds. `range` bounds it, in ms: a duration that becomes a
   * timer needs `max: maxTimerMs`.
   */
  durationMs(name: string, fallback: string | number, range?: { min?: number; max?: number }): number;
  oneOf<T extends string>(name: string, choices: readonly T[], fallback: T): T;
  /**
   * Where a gRPC server listens, as grpc-js takes it: `host:port`
   * (`127.0.0.1:50051`, `[::1]:50051`, `users.internal:50051`), or a target
   * with one of grpc-js's schemes (`dns:///users.internal:50051`,
   * `unix:///run/users.sock`, `ipv4:10.0.0.1:50051,10.0.0.2:50051`).
   */
  target(name: string, fallback: string): string;
}

/** What a target must look like, for messages that refuse one. */
export const targetForm =
  'host:port, such as "127.0.0.1:50051" or "[::1]:50051", or a grpc-js target such as "dns:///users.internal:50051"';

const durationPattern = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/;
const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * The longest delay setTimeout keeps (2^31 - 1 ms, about 24.8 days): Node
 * fires a timer set for longer after 1 ms instead, so a 30-day handshake
 * timeout would close every connection at once.
 */
export const maxTimerMs = 2 ** 31 - 1;

/** A duration in the largest unit that states it exactly: 250 → "250ms", 86400000 → "24h". */
function durationText(ms: number): string {
  for (const unit of ["h", "m", "s"] as const) {
    if (ms >= durationUnits[unit]! && ms % durationUnits[unit]! === 0) return `${ms / durationUnits[unit]!}${unit}`;
  }
  return `${ms}ms`;
}

/** Parses "250ms", "1.5s", "2m", "1h" or "300" (milliseconds). Returns undefined when malformed. */
export function parseDurationMs(text: string): number | undefined {
  const match = durationPattern.exec(text.trim());
  if (!match) return undefined;
  return Number(match[1]) * durationUnits[match[2] ?? "ms"]!;
}

export function envReader(env: Env = process.env): EnvReader {
  const raw = (name: string) => {
    const value = env[name];
    return value === undefined || value.trim() === "" ? undefined : value.trim();
  };
  const checkRange = (name: string, text: string, value: number, range?: { min?: number; max?: number }) => {
    if ((range?.min !== undefined && value < range.min) || (range?.max !== undefined && value > range.max)) {
      throw new ConfigError(name, text, `a number from ${range?.min ?? "-∞"} to ${range?.max ?? "∞"}`);
    }
    return value;
  };
  return {
    string: (name, fallback) => raw(name) ?? fallback,
    optionalString: (name) => raw(name),
    int(name, fallback, range) {
      const text = raw(name);
      if (text === undefined) return fallback;
      if (!/^-?\d+$/.test(text)) throw new ConfigError(name, text, "a whole number");
      return checkRange(name, text, Number(text), range);
    },
    number(name, fallback, range) {
      const text = raw(name);
      if (text === undefined) return fallback;
      const value = Number(text);
      if (!Number.isFinite(value)) throw new ConfigError(name, text, "a number");
      return checkRange(name, text, value, range);
    },
    bool(name, fallback) {
      const text = raw(name)?.toLowerCase();
      if (text === undefined) return fallback;
      if (["1", "true", "yes", "on"].includes(text)) return true;
      if (["0", "false", "no", "off"].includes(text)) return false;
      throw new ConfigError(name, text, "true or false");
    },
    durationMs(name, fallback, range) {
      const text = raw(name);
      if (text === undefined) return typeof fallback === "number" ? fallback : parseDurationMs(fallback)!;
      const value = parseDurationMs(text);
      if (value === undefined) throw new ConfigError(name, text, 'a duration such as "250ms", "10s" or "2m"');
      if ((range?.min !== undefined && value < range.min) || (range?.max !== undefined && value > range.max)) {
        throw new ConfigError(
          name,
          text,
          `a duration from "${durationText(range?.min ?? 0)}" to ${range?.max === undefined ? "any length" : `"${durationText(range.max)}"`}`,
        );
      }
      return value;
    },
    oneOf(name, choices, fallback) {
      const text = raw(name);
      if (text === undefined) return fallback;
      if (!(choices as readonly string[]).includes(text))
        throw new ConfigError(name, text, `one of ${choices.join(", ")}`);
      return text as (typeof choices)[number];
    },
    target(name, fallback) {
      const text = raw(name);
      if (text === undefined) return fallback;
      if (!isGrpcTarget(text)) throw new ConfigError(name, text, targetForm);
      return text;
    },
  };
}

/** Admission control: see server/admission.ts. */
export interface AdmissionConfig {
  /** Unary calls running at once (MAX_CALLS_IN_FLIGHT), default 64; 0 turns admission control off. */
  maxCallsInFlight: number;
  /** Unary calls waiting for a slot at most (MAX_CALLS_QUEUED), default 64; more are refused at once. */
  maxCallsQueued: number;
  /**
   * Longest wait a call is queued for (MAX_QUEUE_WAIT), default 250 ms, and
   * at most half a call's deadline; a call expected to wait longer is refused
   * at once. What is queued is refused only when no slot has freed for four
   * times this long.
   */
  maxQueueWaitMs: number;
}

/** Limits on client connections. */
export interface ConnectionConfig {
  /** Time a new connection has to send the HTTP/2 preface and settings (HANDSHAKE_TIMEOUT), default 10 s. */
  handshakeTimeoutMs: number;
  /** A connection without calls for this long is closed (CONNECTION_IDLE_TIMEOUT), default 5 min; 0: never. */
  idleTimeoutMs: number;
  /** A connection is asked to go away after this long (MAX_CONNECTION_AGE), default 30 min; 0: never. */
  maxAgeMs: number;
  /** Then its calls have this long to finish before it is closed (MAX_CONNECTION_AGE_GRACE), default 5 min. */
  maxAgeGraceMs: number;
  /** Calls (HTTP/2 streams) open at once on one connection (MAX_CONCURRENT_STREAMS), default 256. */
  maxConcurrentStreams: number;
  /** Connections open at once (MAX_CONNECTIONS), default 4096; more are closed as they arrive. */
  maxConnections: number;
}

export const defaultAdmissionConfig: AdmissionConfig = Object.freeze({
  maxCallsInFlight: 64,
  maxCallsQueued: 64,
  maxQueueWaitMs: 250,
});

export const defaultConnectionConfig: ConnectionConfig = Object.freeze({
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 5 * 60_000,
  maxAgeMs: 30 * 60_000,
  maxAgeGraceMs: 5 * 60_000,
  maxConcurrentStreams: 256,
  maxConnections: 4096,
});

/** Settings every shopmesh server reads. */
export interface ServerConfig {
  /** Address to listen on (HOST), default 127.0.0.1. */
  host: string;
  /** Port to listen on (PORT); 0 picks a free one. */
  port: number;
  /** pino level (LOG_LEVEL), default info. */
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** How long health reports NOT_SERVING before the server stops accepting calls (SHUTDOWN_DELAY). */
  shutdownDelayMs: number;
  /** How long in-flight calls may take to finish after that (SHUTDOWN_GRACE). */
  shutdownGraceMs: number;
  /** Largest request message accepted, in bytes (MAX_REQUEST_BYTES); larger ones get RESOURCE_EXHAUSTED. */
  maxRequestBytes: number;
  /** Whether faults may be injected (FAULT_INJECTION=on); off by default. */
  faultInjection: boolean;
  /**
   * What serves the gRPC port (GRPC_SERVER): grpc-js (default), or
   * connect-node's adapter on node:http2, kept to measure the services
   * against the stack connect-es users would build (see connect-grpc-listener.ts).
   */
  grpcServer: "grpc-js" | "connect-node";
  /**
   * Port of the loopback-only admin listener (ADMIN_PORT): by default
   * {@link defaultAdminPort} of the service's port, or a free port when PORT is 0.
   */
  adminPort: number;
  admission: AdmissionConfig;
  connections: ConnectionConfig;
}

/**
 * Refuses two of a service's listeners on one port where their addresses
 * overlap (the same one, or either listening on every address: "" stands
 * for a host not known here), naming the later variable: otherwise the
 * second would fail to listen with EADDRINUSE, which names no setting. 0
 * picks a free port for each.
 */
export function checkPortsApart(listeners: [variable: string, host: string, port: number | undefined][]): void {
  const everywhere = (host: string) => host === "0.0.0.0" || host === "::" || host === "";
  for (const [index, [variable, host, port]] of listeners.entries()) {
    if (port === undefined || port === 0) continue;
    const earlier = listeners
      .slice(0, index)
      .find(
        ([, otherHost, otherPort]) =>
          otherPort === port && (otherHost === host || everywhere(otherHost) || everywhere(host)),
      );
    if (earlier !== undefined) {
      throw new ConfigError(variable, String(port), `a port other than ${earlier[0]}'s (${port}), or 0 for a free one`);
    }
  }
}

/**
 * Where a service's admin listener goes when ADMIN_PORT is not set: 20000
 * below its port (50051 → 30051), or 10000 above it for a port below 21024,
 * so that the usual ports' admin listeners sit below Linux's ephemeral range
 * (32768-60999), where an outgoing connection could hold them. A service on
 * port 0 gets a free admin port too (0).
 */
export function defaultAdminPort(port: number): number {
  if (port === 0) return 0;
  return port - 20_000 >= 1024 ? port - 20_000 : port + 10_000;
}

/** The range of a duration that becomes a timer. */
const timer = { max: maxTimerMs };

const grpcServers = ["grpc-js", "connect-node"] as const;

const logLevels = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/**
 * Reads the common server settings; `defaultPort` is the service's
 * well-known port, and `admissionDefaults` its own admission defaults where
 * they differ from {@link defaultAdmissionConfig}.
 */
export function readServerConfig(
  defaultPort: number,
  env: Env = process.env,
  admissionDefaults: Partial<AdmissionConfig> = {},
): ServerConfig {
  const read = envReader(env);
  const admission = { ...defaultAdmissionConfig, ...admissionDefaults };
  const port = read.int("PORT", defaultPort, { min: 0, max: 65535 });
  return {
    host: read.string("HOST", "127.0.0.1"),
    port,
    logLevel: read.oneOf("LOG_LEVEL", logLevels, "info"),
    shutdownDelayMs: read.durationMs("SHUTDOWN_DELAY", 0, timer),
    shutdownGraceMs: read.durationMs("SHUTDOWN_GRACE", "10s", timer),
    maxRequestBytes: read.int("MAX_REQUEST_BYTES", 1024 * 1024, { min: 1024, max: 64 * 1024 * 1024 }),
    faultInjection: read.bool("FAULT_INJECTION", false),
    grpcServer: read.oneOf("GRPC_SERVER", grpcServers, "grpc-js"),
    adminPort: read.int("ADMIN_PORT", defaultAdminPort(port), { min: 0, max: 65535 }),
    admission: {
      maxCallsInFlight: read.int("MAX_CALLS_IN_FLIGHT", admission.maxCallsInFlight, { min: 0, max: 100_000 }),
      maxCallsQueued: read.int("MAX_CALLS_QUEUED", admission.maxCallsQueued, { min: 0, max: 100_000 }),
      maxQueueWaitMs: read.durationMs("MAX_QUEUE_WAIT", admission.maxQueueWaitMs, timer),
    },
    connections: {
      handshakeTimeoutMs: read.durationMs("HANDSHAKE_TIMEOUT", defaultConnectionConfig.handshakeTimeoutMs, {
        min: 1,
        max: maxTimerMs,
      }),
      idleTimeoutMs: read.durationMs("CONNECTION_IDLE_TIMEOUT", defaultConnectionConfig.idleTimeoutMs, timer),
      maxAgeMs: read.durationMs("MAX_CONNECTION_AGE", defaultConnectionConfig.maxAgeMs, timer),
      maxAgeGraceMs: read.durationMs("MAX_CONNECTION_AGE_GRACE", defaultConnectionConfig.maxAgeGraceMs, timer),
      maxConcurrentStreams: read.int("MAX_CONCURRENT_STREAMS", defaultConnectionConfig.maxConcurrentStreams, {
        min: 1,
        max: 2 ** 31 - 1,
      }),
      maxConnections: read.int("MAX_CONNECTIONS", defaultConnectionConfig.maxConnections, { min: 1, max: 1_000_000 }),
    },
  };
}
