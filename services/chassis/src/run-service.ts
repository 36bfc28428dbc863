import { ConfigError, readServerConfig, type ServerConfig } from "./config.js";
import { createLogger, type Logger } from "./logger.js";
import { startServer, type HostedService, type RunningServer } from "./server/service-server.js";
import type { Interceptor } from "@connectrpc/connect";

/** What a service's setup returns: what to host and how to clean up. */
export interface ServiceSetup {
  services: HostedService[];
  interceptors?: Interceptor[];
  /** Runs after the server has stopped, e.g. to close the database. */
  close?: () => void | Promise<void>;
}

/** Options for {@link runService}. */
export interface RunServiceOptions {
  /** Short name used in logs, e.g. "users". */
  name: string;
  /** Well-known port, used when PORT is not set. */
  defaultPort: number;
  setup: (context: { config: ServerConfig; logger: Logger; env: NodeJS.ProcessEnv }) => ServiceSetup | Promise<ServiceSetup>;
}

/**
 * The entry point of a service process: reads configuration, sets the
 * service up, serves, logs one `ready` line with the port, and on SIGTERM or
 * SIGINT drains and exits 0. A configuration error exits 2 with a message
 * naming the variable; any other start-up failure exits 1.
 */
export async function runService(options: RunServiceOptions): Promise<RunningServer | undefined> {
  let config: ServerConfig;
  try {
    config = readServerConfig(options.defaultPort);
  } catch (error) {
    return exitOnStartError(options.name, error);
  }
  const logger = createLogger(options.name, config.logLevel);
  try {
    const setup = await options.setup({ config, logger, env: process.env });
    const server = await startServer({ config, logger, services: setup.services, interceptors: setup.interceptors });
    let shuttingDown = false;
    const shutdown = (signal: string) => {
      // A terminal's Ctrl-C reaches both a supervisor and its children, which
      // then also hear the supervisor's SIGTERM: stop once.
      if (shuttingDown) return;
      shuttingDown = true;
      logger.info({ signal }, "shutting down");
      server
        .stop()
        .then(() => setup.close?.())
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
    logger.info({ host: server.host, port: server.port, services: setup.services.map((s) => s.service.typeName) }, "ready");
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
