import { readFileSync } from "node:fs";
import { defaultAdminPort, defaultHttpPort, defaultMetricsPort } from "@shopmesh/chassis";
import type { LocalMesh } from "@shopmesh/cli";
import type { MeshService } from "../summary-types.js";
import { type RunningConsole, startConsole } from "./console-server.js";
import { ensurePageBuilt, pageDir } from "./page-build.js";

/** The console's port for a mesh whose first service port is `basePort`: just below the admin listeners. */
export const defaultConsolePort = (basePort: number) => defaultAdminPort(basePort) - 1;

/**
 * What a service that should send its spans to the console needs: OTLP/HTTP
 * in JSON to the console, recording only calls that arrive with a sampled
 * traceparent (the console's load and the page's own views), so that
 * nothing else is recorded or sent.
 */
export function consoleTracingEnv(consoleUrl: string): Record<string, string> {
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: consoleUrl,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json",
    OTEL_TRACES_SAMPLER: "parentbased_always_off",
    // Sent within a moment of ending, so that the page can draw the view it just showed.
    OTEL_BSP_SCHEDULE_DELAY: "200",
  };
}

export interface MeshConsoleOptions {
  /** 0 for any free port. */
  port: number;
  /** The services' gRPC ports (npm start's; each listener is where npm start puts it). */
  ports: Record<MeshService, number>;
  /** Whether the services serve metrics (METRICS_PORT is not off): without them the console shows every service as down. */
  metrics: boolean;
  /** The mesh once started (for its CA); undefined before. */
  mesh: () => LocalMesh | undefined;
  /** The demo user whose view the load reads, once seeded. */
  loadUserId: () => string | undefined;
}

/**
 * The console for `npm start`'s mesh: builds the page if its sources
 * changed, then serves it on loopback. Every service is looked for where
 * npm start puts it, so one started by another `npm start` is found too.
 */
export async function startMeshConsole(options: MeshConsoleOptions): Promise<RunningConsole> {
  await ensurePageBuilt();
  let ca: Buffer | undefined;
  return startConsole({
    port: options.port,
    pageDir,
    endpoints: (service) => {
      const port = options.ports[service];
      return {
        address: `127.0.0.1:${port}`,
        adminPort: defaultAdminPort(port),
        httpPort: defaultHttpPort(port),
        metricsPort: options.metrics ? defaultMetricsPort(port) : undefined,
      };
    },
    ca: () => {
      const certificates = options.mesh()?.certificates;
      if (ca === undefined && certificates !== undefined) ca = readFileSync(certificates.caFile);
      return ca;
    },
    loadUserId: options.loadUserId,
  });
}
