import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { ConfigError, envReader } from "../config.js";
import { collectProcessMetrics, metricsRegistry } from "./service-metrics.js";

/** Where a service serves `/metrics`. */
export interface MetricsConfig {
  /** Address to listen on (METRICS_HOST), default 127.0.0.1 like the admin listener. */
  host: string;
  /** Port (METRICS_PORT); 0 picks a free one. */
  port: number;
}

/**
 * Where a service's metrics listener goes when METRICS_PORT is not set: 2000
 * above its port (50051 → 52051), beside the Connect port 1000 above it; or
 * 2000 below for a port that has no room above. A service on port 0 gets a
 * free metrics port too (0).
 */
export function defaultMetricsPort(port: number): number {
  if (port === 0) return 0;
  return port + 2000 <= 65_535 ? port + 2000 : port - 2000;
}

/**
 * Reads METRICS_PORT (a port, 0 for a free one, or `off`) and METRICS_HOST;
 * undefined when metrics are off. A bad value is a ConfigError naming the
 * variable.
 */
export function readMetricsConfig(
  servicePort: number,
  env: NodeJS.ProcessEnv = process.env,
): MetricsConfig | undefined {
  const read = envReader(env);
  const host = read.string("METRICS_HOST", "127.0.0.1");
  const text = read.optionalString("METRICS_PORT");
  if (text?.toLowerCase() === "off") return undefined;
  if (text !== undefined && !/^\d+$/.test(text))
    throw new ConfigError("METRICS_PORT", text, "a port from 0 to 65535, or off");
  return { host, port: read.int("METRICS_PORT", defaultMetricsPort(servicePort), { min: 0, max: 65_535 }) };
}

/** A listening metrics endpoint. */
export interface MetricsListener {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves the process's registry in Prometheus' text format at `GET
 * /metrics` over plain HTTP/1.1, on a listener of its own: a scraper needs
 * neither gRPC nor a token, and a port apart keeps scrapes out of the
 * service's admission control. `/metrics?name=a&name=b` serves only those
 * families (a name this process does not have is left out), for a watcher
 * that reads a few of them often and should not pay for the rest.
 */
export async function startMetricsListener(config: MetricsConfig): Promise<MetricsListener> {
  collectProcessMetrics();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: metrics are at /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("use GET\n");
      return;
    }
    metricsText(new URLSearchParams((req.url ?? "").split("?")[1] ?? "").getAll("name")).then(
      (text) => {
        res.writeHead(200, { "content-type": metricsRegistry.contentType });
        res.end(req.method === "HEAD" ? undefined : text);
      },
      (error: unknown) => {
        res.writeHead(500, { "content-type": "text/plain" }).end(`${String(error)}\n`);
      },
    );
  });
  // Scrapers keep their connection open between scrapes; closing must not wait for them.
  server.keepAliveTimeout = 30_000;
  server.listen({ host: config.host, port: config.port });
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string")
    throw new Error(`unexpected listening address ${String(address)}`);
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The whole registry, or only the families named. */
async function metricsText(names: string[]): Promise<string> {
  if (names.length === 0) return metricsRegistry.metrics();
  // Not getSingleMetric: it looks names up on a plain object, where __proto__ and constructor are found.
  const have = new Set(metricsRegistry.getMetricsAsArray().map((metric) => metric.name));
  const known = [...new Set(names)].filter((name) => have.has(name));
  if (known.length === 0) return "";
  const families = await Promise.all(known.map((name) => metricsRegistry.getSingleMetricAsString(name)));
  return `${families.join("\n")}\n`;
}
