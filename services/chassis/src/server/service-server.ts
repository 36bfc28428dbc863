import { setTimeout as sleep } from "node:timers/promises";
import { Server, status as GrpcStatus, type ChannelOptions, type ServerCredentials } from "@grpc/grpc-js";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { Health } from "@shopmesh/sdk/health/v1";
import {
  defaultAdmissionConfig,
  defaultConnectionConfig,
  type ConnectionConfig,
  type ServerConfig,
} from "../config.js";
import type { Logger } from "../logger.js";
import { CallLimiter } from "./admission.js";
import { statusName } from "./call-status.js";
import { callGate, type RefusalListener } from "./call-gate.js";
import { HealthRegistry, ServingStatus } from "./health.js";
import { hostService } from "./host-service.js";
import { RunningCalls, type CallRecord } from "./host-options.js";
import { addReflection } from "./reflection.js";
import { decodingSafely } from "./request-decoding.js";
import { RefusalTimes } from "./refusal-times.js";
import { listenForGrpc } from "./tcp-listener.js";
import { recordRefusedCall } from "../metrics/rpc-metrics.js";
import { trackAdmission } from "../metrics/service-metrics.js";
import type { HttpConfig } from "../http-config.js";
import { httpCallGate, type HttpCallGateOptions } from "./http-call-gate.js";
import { listenForConnectGrpc } from "./connect-grpc-listener.js";
import { listenForHttp, type HttpListener, type HttpListenOptions } from "./http-listener.js";
import { maxRequestsArriving } from "./request-arrivals.js";
import type { CertificateFiles } from "../tls/certificate-files.js";

/** A service descriptor with its implementation. */
export interface HostedService {
  service: DescService;
  impl: object;
}

/**
 * Pairs a generated service with its implementation, checked by the
 * compiler. Methods left out answer UNIMPLEMENTED.
 */
export function hosted<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>): HostedService {
  return { service, impl };
}

/** Options for {@link startServer}. */
export interface StartServerOptions {
  /** Admission and connection limits not given take their defaults; `maxCallsInFlight: 0` turns admission off. */
  config: Pick<ServerConfig, "host" | "port" | "shutdownDelayMs" | "shutdownGraceMs" | "maxRequestBytes"> &
    Partial<Pick<ServerConfig, "admission" | "connections" | "grpcServer">>;
  logger: Logger;
  services: HostedService[];
  /** Connect interceptors around every call of the hosted services (not health). */
  interceptors?: Interceptor[];
  /** Also serve the hosted services over HTTP (Connect, gRPC-Web) on this port; none when absent. */
  http?: HttpConfig;
  /** TLS for the port (see tls/certificate-files.ts); plaintext when omitted. */
  credentials?: ServerCredentials;
  /** HTTPS on the HTTP port with these files (the ones behind `credentials`); plain HTTP when omitted. */
  httpCertificates?: CertificateFiles;
}

/** A listening server. */
export interface RunningServer {
  readonly host: string;
  readonly port: number;
  /** `host:port`, ready for a client's target. */
  readonly address: string;
  /** Port of the HTTP listener (Connect, gRPC-Web), if there is one. */
  readonly httpPort: number | undefined;
  readonly health: HealthRegistry;
  /**
   * Unary calls running and waiting for a slot now, and how soon after
   * arriving the refused ones were refused; undefined when admission control
   * is off.
   */
  readonly admission:
    | { readonly running: number; readonly waiting: number; readonly refusals: RefusalTimes }
    | undefined;
  /**
   * Drains and stops: health turns NOT_SERVING, and after the shutdown delay
   * the server stops accepting calls and waits up to the grace period for
   * in-flight calls before cancelling what is left. Safe to call twice.
   */
  stop(): Promise<void>;
}

/**
 * Counts an event that can come thousands of times a second (a refused
 * call, a dropped connection) and logs it at most every 10 s, with how many
 * there were since the last line.
 */
function throttled(log: (count: number) => void): () => void {
  let count = 0;
  let loggedAt = -Infinity;
  return () => {
    count++;
    const now = performance.now();
    if (now - loggedAt < 10_000) return;
    log(count);
    count = 0;
    loggedAt = now;
  };
}

/** Health checks answer however busy the server is: they are how others learn that it is. */
const healthPath = `/${Health.typeName}/`;

/** grpc-js's own connection limits; 0 stands for "never" in the settings, for "at once" in grpc-js. */
function connectionOptions(connections: ConnectionConfig): ChannelOptions {
  return {
    "grpc.max_concurrent_streams": connections.maxConcurrentStreams,
    ...(connections.idleTimeoutMs > 0 ? { "grpc.max_connection_idle_ms": connections.idleTimeoutMs } : {}),
    ...(connections.maxAgeMs > 0
      ? {
          "grpc.max_connection_age_ms": connections.maxAgeMs,
          "grpc.max_connection_age_grace_ms": connections.maxAgeGraceMs,
        }
      : {}),
  };
}

/**
 * Starts a grpc-js server hosting the given Connect services plus
 * `grpc.health.v1.Health` and server reflection, all of them SERVING.
 * Every call passes the call gate first (undecodable requests, admission
 * control), and every connection the handshake timeout (tcp-listener.ts).
 */
export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const { config, logger } = options;
  const admission = config.admission ?? defaultAdmissionConfig;
  const connections = config.connections ?? defaultConnectionConfig;
  const limiter = admission.maxCallsInFlight > 0 ? new CallLimiter(admission) : undefined;
  const refusedForOverload = throttled((refused) =>
    logger.warn({ refused, running: limiter?.running, waiting: limiter?.waiting }, "overloaded: refusing calls"),
  );
  const refusals = new RefusalTimes();
  if (limiter) trackAdmission(() => limiter);
  const cutUnfinished = throttled((cut) => logger.warn({ cut }, "cutting calls whose requests do not finish arriving"));
  const onCut = (method: string, details: string, afterMs: number) => {
    recordRefusedCall(method, GrpcStatus.RESOURCE_EXHAUSTED, afterMs);
    if (logger.isLevelEnabled("debug")) logger.debug({ method, details }, "call cut");
    cutUnfinished();
  };
  // Every call ended before its handler ran, on either port: refused for overload, or a request that does not decode.
  const onRefused: RefusalListener = (method, code, details, afterMs) => {
    recordRefusedCall(method, code, afterMs);
    if (logger.isLevelEnabled("debug")) logger.debug({ method, code: statusName(code), details }, "call refused");
    if (code === GrpcStatus.RESOURCE_EXHAUSTED) {
      refusals.record(afterMs);
      refusedForOverload();
    }
  };
  const gate = callGate({ limiter, exempt: (path) => path.startsWith(healthPath), onCut, onRefused });
  const server = new Server({
    "grpc.max_receive_message_length": config.maxRequestBytes,
    // No channelz service is hosted, so nothing would read what grpc-js
    // otherwise records for it on every call (timestamps, counters, a
    // tracker object with four closures).
    "grpc.enable_channelz": 0,
    ...connectionOptions(connections),
    interceptors: [gate],
  });
  const onCallEnd = (record: CallRecord) => {
    if (record.internal !== undefined) {
      logger.error({ err: record.internal, method: record.method }, "handler failed");
    }
    // Checked first: the line's fields would otherwise be built for every call only to be dropped.
    if (!logger.isLevelEnabled("debug")) return;
    logger.debug(
      {
        method: record.method,
        code: record.code,
        durationMs: round(record.durationMs),
        ...(record.timeoutMs === undefined ? {} : { timeoutMs: round(record.timeoutMs) }),
      },
      "call",
    );
  };
  const serviceNames = options.services.map((entry) => entry.service.typeName);
  const health = new HealthRegistry(serviceNames);
  const stopping = new AbortController();
  const running = new RunningCalls();
  for (const entry of options.services) {
    hostService(server, entry.service, entry.impl as ServiceImpl<DescService>, {
      interceptors: options.interceptors,
      onCallEnd,
      onRefused,
      stopping: stopping.signal,
      running,
    });
  }
  hostService(server, Health, health.service, { onCallEnd, onRefused });
  // Reflection's definitions come from @grpc/proto-loader, whose deserializers throw on bad bytes.
  const safely = {
    addService: (definition, implementation) => server.addService(decodingSafely(definition), implementation),
  } satisfies Pick<Server, "addService">;
  addReflection(safely, [...options.services.map((entry) => entry.service), Health]);

  const httpGate: HttpCallGateOptions = {
    limiter,
    running,
    stopping: stopping.signal,
    onRefused,
    onCallEnd,
  };
  const connectNode = config.grpcServer === "connect-node";
  const listener = connectNode
    ? await listenForConnectGrpc({
        host: config.host,
        port: config.port,
        services: [...options.services, { service: Health, impl: health.service }],
        // Health stays outside admission and the services' interceptors, as on grpc-js's port.
        interceptors: [httpCallGate(httpGate), ...(options.interceptors ?? [])].map((interceptor) =>
          exceptFor(Health, interceptor),
        ),
        maxRequestBytes: config.maxRequestBytes,
        maxConcurrentStreams: connections.maxConcurrentStreams,
        tls: options.httpCertificates,
      })
    : await listenForGrpc(server, {
        host: config.host,
        port: config.port,
        handshakeTimeoutMs: connections.handshakeTimeoutMs,
        maxConnections: connections.maxConnections,
        credentials: options.credentials,
        onDropped: throttled((dropped) =>
          logger.warn(
            { dropped, maxConnections: connections.maxConnections },
            "too many connections: closing new ones",
          ),
        ),
      });
  const port = listener.port;
  const http = options.http === undefined ? undefined : await startHttp(options, options.http, httpGate, onCut);
  const address = `${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      health.setAll(ServingStatus.NOT_SERVING);
      logger.info({ delayMs: config.shutdownDelayMs, graceMs: config.shutdownGraceMs }, "draining");
      if (config.shutdownDelayMs > 0) await sleep(config.shutdownDelayMs);
      health.close();
      listener.close();
      const httpClosed = http?.close();
      // Streams that would never end on their own (event streams) end now.
      stopping.abort();
      const drained = Promise.all([
        connectNode ? undefined : new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
        listener.connectionsClosed(),
        httpClosed,
      ]).then(() => true);
      const timer = sleep(config.shutdownGraceMs, false, { ref: false });
      if (!(await Promise.race([drained, timer]))) {
        logger.warn("grace period over; cancelling the calls still in flight");
        // Answered UNAVAILABLE, which a client may retry elsewhere; a reset
        // stream (forceShutdown) reaches the client as INTERNAL.
        running.cutAll(
          new ConnectError(
            "the server is shutting down and the call did not finish within its grace period",
            Code.Unavailable,
          ),
        );
        if (!(await Promise.race([drained, sleep(answerFlushMs, false, { ref: false })]))) {
          server.forceShutdown();
          http?.closeAll();
        }
      }
      if (refusals.count > 0)
        logger.info(
          { ...refusals.summary(), meanHoldMs: Math.round(limiter?.meanHoldMs ?? 0) },
          "refused for overload, ms after arrival",
        );
      logger.info("stopped");
    })());

  return {
    host: config.host,
    port,
    address,
    httpPort: http?.port,
    health,
    admission:
      limiter === undefined
        ? undefined
        : {
            get running() {
              return limiter.running;
            },
            get waiting() {
              return limiter.waiting;
            },
            refusals,
          },
    stop,
  };
}

/** The HTTP listener of {@link startServer}'s services, behind the HTTP call gate and the services' interceptors. */
function startHttp(
  options: StartServerOptions,
  http: HttpConfig,
  gate: HttpCallGateOptions,
  onCut: HttpListenOptions["onCut"],
): Promise<HttpListener> {
  const { config, logger } = options;
  const connections = config.connections ?? defaultConnectionConfig;
  return listenForHttp({
    host: config.host,
    port: http.port,
    services: options.services,
    interceptors: [httpCallGate(gate), ...(options.interceptors ?? [])],
    maxRequestBytes: config.maxRequestBytes,
    connections,
    corsOrigins: http.corsOrigins,
    tls: options.httpCertificates,
    onRefused: gate.onRefused,
    // As on the gRPC port: no more requests still arriving than calls the server holds.
    ...(gate.limiter === undefined ? {} : { maxRequestsArriving: maxRequestsArriving(gate.limiter.settings), onCut }),
    onDropped: throttled((dropped) =>
      logger.warn(
        { dropped, maxConnections: connections.maxConnections, listener: "http" },
        "too many connections: closing new ones",
      ),
    ),
  });
}

/** `interceptor` for every call but those of `service`. */
function exceptFor(service: DescService, interceptor: Interceptor): Interceptor {
  return (next) => {
    const intercepted = interceptor(next);
    return (request) => (request.service.typeName === service.typeName ? next(request) : intercepted(request));
  };
}

/** How long the answers to calls cut off at the end of the grace period get to leave before the connections are closed regardless. */
const answerFlushMs = 500;

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
