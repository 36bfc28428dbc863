import { Server, ServerCredentials } from "@grpc/grpc-js";
import { Health } from "@shopmesh/sdk/health/v1";
import { ConfigError, envReader } from "../config.js";
import { callGate } from "./call-gate.js";
import type { HealthRegistry } from "./health.js";
import { hostService } from "./host-service.js";

/**
 * Reads HEALTH_PORT (a port, 0 for a free one, or `off`, the default):
 * where a plaintext listener answers `grpc.health.v1.Health` and nothing
 * else. Kubernetes' gRPC probes and other orchestrators' health checks speak
 * no TLS, and the service's own port speaks only TLS; this one tells them the
 * same statuses and exposes no other method.
 */
export function readHealthPort(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const read = envReader(env);
  const text = read.optionalString("HEALTH_PORT");
  if (text === undefined || text.toLowerCase() === "off") return undefined;
  if (!/^\d+$/.test(text)) throw new ConfigError("HEALTH_PORT", text, "a port from 0 to 65535, or off");
  return read.int("HEALTH_PORT", 0, { min: 0, max: 65_535 });
}

/** A listening health endpoint. */
export interface HealthListener {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves the given registry (the service's own, so that a draining service
 * reports NOT_SERVING here too) on `host:port` without TLS.
 */
export async function startHealthListener(options: {
  host: string;
  port: number;
  health: HealthRegistry;
}): Promise<HealthListener> {
  // The gate without admission: a Check of no message or two gets INVALID_ARGUMENT, as on the service's port.
  const server = new Server({ "grpc.enable_channelz": 0, interceptors: [callGate({})] });
  hostService(server, Health, options.health.service);
  const port = await new Promise<number>((resolve, reject) => {
    const address = options.host.includes(":")
      ? `[${options.host}]:${options.port}`
      : `${options.host}:${options.port}`;
    server.bindAsync(address, ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        // Watch streams would hold a graceful shutdown open: the registry ends them, this ends what is left.
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000).unref();
      }),
  };
}
