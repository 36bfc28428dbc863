import { setTimeout as sleep } from "node:timers/promises";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { Health } from "@shopmesh/sdk/health/v1";
import type { ServerConfig } from "../config.js";
import type { Logger } from "../logger.js";
import { HealthRegistry, ServingStatus } from "./health.js";
import { hostService, RunningCalls, type CallRecord } from "./host-service.js";
import { addReflection } from "./reflection.js";

/** A service descriptor with its implementation. */
export interface HostedService {
  service: DescService;
  impl: object;
}

/** Pairs a generated service with its implementation, checked by the compiler. */
export function hosted<S extends DescService>(service: S, impl: ServiceImpl<S>): HostedService {
  return { service, impl };
}

/** Options for {@link startServer}. */
export interface StartServerOptions {
  config: Pick<ServerConfig, "host" | "port" | "shutdownDelayMs" | "shutdownGraceMs" | "maxRequestBytes">;
  logger: Logger;
  services: HostedService[];
  /** Connect interceptors around every call of the hosted services (not health). */
  interceptors?: Interceptor[];
}

/** A listening server. */
export interface RunningServer {
  readonly host: string;
  readonly port: number;
  /** `host:port`, ready for a client's target. */
  readonly address: string;
  readonly health: HealthRegistry;
  /**
   * Drains and stops: health turns NOT_SERVING, and after the shutdown delay
   * the server stops accepting calls and waits up to the grace period for
   * in-flight calls before cancelling what is left. Safe to call twice.
   */
  stop(): Promise<void>;
}

/**
 * Starts a grpc-js server hosting the given Connect services plus
 * `grpc.health.v1.Health` and server reflection, all of them SERVING.
 */
export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const { config, logger } = options;
  const server = new Server({
    "grpc.max_receive_message_length": config.maxRequestBytes,
    // No channelz service is hosted, so nothing would read what grpc-js
    // otherwise records for it on every call (timestamps, counters, a
    // tracker object with four closures).
    "grpc.enable_channelz": 0,
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
      stopping: stopping.signal,
      running,
    });
  }
  hostService(server, Health, health.service, { onCallEnd });
  addReflection(server, [...options.services.map((entry) => entry.service), Health]);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${config.host}:${config.port}`, ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  const address = `${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      health.setAll(ServingStatus.NOT_SERVING);
      logger.info({ delayMs: config.shutdownDelayMs, graceMs: config.shutdownGraceMs }, "draining");
      if (config.shutdownDelayMs > 0) await sleep(config.shutdownDelayMs);
      health.close();
      // Streams that would never end on their own (event streams) end now.
      stopping.abort();
      const drained = new Promise<boolean>((resolve) => server.tryShutdown(() => resolve(true)));
      const timer = sleep(config.shutdownGraceMs, false, { ref: false });
      if (!(await Promise.race([drained, timer]))) {
        logger.warn("grace period over; cancelling the calls still in flight");
        // Answered UNAVAILABLE, which a client may retry elsewhere; a reset
        // stream (forceShutdown) reaches the client as INTERNAL.
        running.cutAll(new ConnectError("the server is shutting down and the call did not finish within its grace period", Code.Unavailable));
        if (!(await Promise.race([drained, sleep(answerFlushMs, false, { ref: false })]))) server.forceShutdown();
      }
      logger.info("stopped");
    })());

  return { host: config.host, port, address, health, stop };
}

/** How long the answers to calls cut off at the end of the grace period get to leave before the connections are closed regardless. */
const answerFlushMs = 500;

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
