import { checkPortsApart, ConfigError, readServerConfig, type AdmissionConfig, type ServerConfig } from "./config.js";
import { createLogger, type Logger } from "./logger.js";
import { startServer, type HostedService, type RunningServer } from "./server/service-server.js";
import type { HealthRegistry } from "./server/health.js";
import type { ConnectError, Interceptor } from "@connectrpc/connect";
import { FaultInjectionService } from "@shopmesh/sdk/faults/v1";
import { createFaultInjectionService } from "./faults/fault-injection-service.js";
import { FaultRegistry, parseFaultsEnv } from "./faults/fault-registry.js";
import { hosted } from "./server/service-server.js";
import type { DescMessage } from "@bufbuild/protobuf";
import type { EventLog } from "./events/event-log.js";
import { readEventsRelayConfig, type EventsRelayConfig } from "./events/nats-settings.js";
import { readMetricsConfig, startMetricsListener, type MetricsConfig } from "./metrics/metrics-listener.js";
import { readHealthPort, startHealthListener } from "./server/health-listener.js";
import { serverMetricsInterceptor } from "./metrics/rpc-metrics.js";
import { trackOutbox } from "./metrics/service-metrics.js";
import { serverTracingInterceptor } from "./tracing/server-tracing.js";
import { startTracing, type Tracing } from "./tracing/tracing-setup.js";
import { readHttpConfig, type HttpConfig } from "./http-config.js";
import { readDevelopmentMode } from "./auth/auth-config.js";
import { adminOnlyInterceptor } from "./auth/auth-interceptor.js";
import type { TokenVerifier } from "./auth/tokens.js";
import { CertificateFiles, mutualTlsServerCredentials } from "./tls/certificate-files.js";
import { readTlsSettings, type TlsSettings } from "./tls/tls-settings.js";

/** What a service's setup returns: what to host and how to clean up. */
export interface ServiceSetup {
  services: HostedService[];
  interceptors?: Interceptor[];
  /**
   * The service's event log, when it has one. With EVENTS_RELAY=nats the
   * chassis relays it to JetStream while the service runs (StreamEvents is
   * served either way).
   */
  events?: EventLog<DescMessage>;
  /** Runs after the server has stopped, e.g. to close the database. */
  close?: () => void | Promise<void>;
  /**
   * The service's token verifier. With FAULT_INJECTION=on outside
   * DEVELOPMENT_MODE the fault-injection listener takes only admins' calls,
   * checked with it.
   */
  verifier?: TokenVerifier;
  /**
   * Runs once the server serves, with its health registry: a service can
   * report a health name of its own (e.g. user-orders' "projection") that
   * turns SERVING later than the server does.
   */
  onServing?: (health: HealthRegistry) => void;
}

/** Options for {@link runService}. */
export interface RunServiceOptions {
  /** Short name used in logs, e.g. "users". */
  name: string;
  /** Well-known port, used when PORT is not set. */
  defaultPort: number;
  /** This service's own admission defaults, where they differ from every service's (see readServerConfig). */
  admissionDefaults?: Partial<AdmissionConfig>;
  setup: (context: {
    config: ServerConfig;
    logger: Logger;
    env: NodeJS.ProcessEnv;
    /** This service's TLS settings: its dependency transports present the same certificate. */
    tls: TlsSettings;
  }) => ServiceSetup | Promise<ServiceSetup>;
}

/**
 * The entry point of a service process: reads configuration, sets the
 * service up, serves, logs one `ready` line with the port, and on SIGTERM or
 * SIGINT drains and exits 0. A configuration error exits 2 with a message
 * naming the variable; any other start-up failure exits 1.
 */
export async function runService(options: RunServiceOptions): Promise<RunningServer | undefined> {
  let config: ServerConfig;
  let faults: FaultRegistry;
  let relayConfig: EventsRelayConfig;
  let metricsConfig: MetricsConfig | undefined;
  let healthPort: number | undefined;
  let tracing: Tracing;
  let http: HttpConfig | undefined;
  let tls: TlsSettings;
  let developmentMode: boolean;
  try {
    // First, so that everything after runs with the tracer in place.
    tracing = await startTracing({ serviceName: options.name });
    config = readServerConfig(options.defaultPort, process.env, options.admissionDefaults);
    metricsConfig = readMetricsConfig(config.port);
    healthPort = readHealthPort();
    tls = readTlsSettings(process.env);
    relayConfig = readEventsRelayConfig();
    // Read whether or not this service needs it, so that a bad value is refused at start, not later.
    developmentMode = readDevelopmentMode(process.env);
    http = readHttpConfig(config.port, config.adminPort, process.env);
    const initialFaults = process.env.FAULTS?.trim() ? parseFaultsEnv(process.env.FAULTS) : [];
    if (initialFaults.length > 0 && !config.faultInjection) {
      throw new ConfigError("FAULTS", process.env.FAULTS ?? "", "no faults unless FAULT_INJECTION=on");
    }
    faults = new FaultRegistry(config.faultInjection, initialFaults);
    checkPortsApart([
      ["PORT", config.host, config.port],
      ["ADMIN_PORT", "127.0.0.1", config.adminPort],
      ["HTTP_PORT", config.host, http?.port],
      ["METRICS_PORT", metricsConfig?.host ?? "", metricsConfig?.port],
      ["HEALTH_PORT", config.host, healthPort],
    ]);
  } catch (error) {
    return exitOnStartError(options.name, error);
  }
  const logger = createLogger(options.name, config.logLevel);
  try {
    const setup = await options.setup({ config, logger, env: process.env, tls });
    try {
      faults.restrictTo(setup.services.flatMap((hosted) => hosted.service.methods.map((method) => method.name)));
    } catch (error) {
      throw new ConfigError(
        "FAULTS",
        process.env.FAULTS ?? "",
        `faults for methods this service hosts (${(error as ConnectError).rawMessage})`,
      );
    }
    // Outside development, injecting faults is for admins, even from loopback.
    const adminOnly = config.faultInjection && !developmentMode;
    if (adminOnly && !setup.verifier)
      throw new ConfigError(
        "FAULT_INJECTION",
        "on",
        "off outside DEVELOPMENT_MODE=on for a service that checks no tokens",
      );
    // The NATS client is loaded only by a service that relays.
    const relay =
      setup.events && relayConfig.kind === "nats"
        ? (await import("./events/nats-relay.js")).startNatsRelay({
            ...relayConfig,
            service: options.name,
            eventLog: setup.events,
            logger,
          })
        : undefined;
    const certificates = tls.mode === "off" ? undefined : new CertificateFiles(tls, logger);
    const server = await startServer({
      config,
      logger,
      services: setup.services,
      // Faults run outermost but for the timing, so an injected delay or error looks like the service itself.
      interceptors: [
        ...(tracing.enabled ? [serverTracingInterceptor] : []),
        // With METRICS_PORT=off nothing could read the call histograms, so no call pays for them.
        ...(metricsConfig === undefined ? [] : [serverMetricsInterceptor]),
        ...(config.faultInjection ? [faults.interceptor] : []),
        ...(setup.interceptors ?? []),
      ],
      http,
      // One reader of the files for both ports: the HTTP port's HTTPS follows the gRPC port's renewals.
      ...(certificates === undefined
        ? {}
        : { credentials: mutualTlsServerCredentials(certificates), httpCertificates: certificates }),
    });
    setup.onServing?.(server.health);
    const events = setup.events;
    if (events)
      trackOutbox(() => ({ outbox: options.name, head: events.outbox.head(), relayed: relay?.state().position }));
    const metrics = metricsConfig && (await startMetricsListener(metricsConfig));
    const healthListener =
      healthPort === undefined
        ? undefined
        : await startHealthListener({ host: config.host, port: healthPort, health: server.health });
    // The admin listener is bound to the loopback interface whatever HOST says, speaks plaintext,
    // and takes no part in admission control: faults must be clearable while the service is overloaded.
    const admin = await startServer({
      config: {
        ...config,
        host: "127.0.0.1",
        port: config.adminPort,
        shutdownDelayMs: 0,
        admission: { ...config.admission, maxCallsInFlight: 0 },
        grpcServer: "grpc-js",
      },
      logger: logger.child({ listener: "admin" }),
      services: [hosted(FaultInjectionService, createFaultInjectionService(faults))],
      ...(adminOnly ? { interceptors: [adminOnlyInterceptor(setup.verifier!)] } : {}),
    });
    let shuttingDown = false;
    const shutdown = (signal: string) => {
      // A terminal's Ctrl-C reaches both a supervisor and its children, which
      // then also hear the supervisor's SIGTERM: stop once.
      if (shuttingDown) return;
      shuttingDown = true;
      logger.info({ signal }, "shutting down");
      Promise.all([server.stop(), admin.stop()])
        .then(() => metrics?.close())
        .then(() => healthListener?.close())
        .then(() => relay?.close())
        .then(() => setup.close?.())
        .then(() => tracing.shutdown())
        .then(
          () => process.exit(0),
          (error: unknown) => {
            logger.error({ err: error }, "shutdown failed");
            process.exit(1);
          },
        );
    };
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGINT", () => shutdown("SIGINT"));
    logger.info(
      {
        host: server.host,
        port: server.port,
        ...(server.httpPort === undefined ? {} : { httpPort: server.httpPort }),
        pid: process.pid,
        adminPort: admin.port,
        ...(metrics ? { metricsPort: metrics.port } : {}),
        ...(healthListener ? { healthPort: healthListener.port } : {}),
        tls: tls.mode,
        faultInjection: config.faultInjection,
        faults: faults.list().length,
        services: setup.services.map((s) => s.service.typeName),
      },
      "ready",
    );
    return server;
  } catch (error) {
    logger.fatal({ err: error }, "start-up failed");
    return exitOnStartError(options.name, error);
  }
}

function exitOnStartError(name: string, error: unknown): undefined {
  if (error instanceof ConfigError) {
    process.stderr.write(`${name}: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`${name}: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
