import { checkPortsApart, ConfigError, envReader } from "./config.js";

type Env = Record<string, string | undefined>;

/** The HTTP listener's settings: where browsers and curl reach the services (Connect, gRPC-Web). */
export interface HttpConfig {
  /** Port of the HTTP listener (HTTP_PORT); 0 picks a free one. */
  port: number;
  /** Origins whose browser pages may call the services (HTTP_CORS_ORIGINS); none by default: same origin only. */
  corsOrigins: readonly string[];
}

/** How far above its gRPC port a service's HTTP listener is by default. */
export const httpPortOffset = 1000;

/**
 * Where a service's HTTP listener goes when HTTP_PORT is not set: 1000 above
 * its gRPC port (50051 → 51051; 1000 below for a port above 64535). The
 * admin listeners (20000 below) and the bench's and experiment's meshes
 * (30151.., 30251..) are elsewhere. A service on port 0 gets a free HTTP
 * port too (0).
 */
export function defaultHttpPort(port: number): number {
  if (port === 0) return 0;
  return port + httpPortOffset <= 65535 ? port + httpPortOffset : port - httpPortOffset;
}

/** An origin as a browser sends it: scheme, host and port only. */
function isOrigin(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "http:" || url.protocol === "https:") && url.origin === text;
  } catch {
    return false;
  }
}

/**
 * Reads HTTP_PORT ("off" turns the listener off: undefined) and
 * HTTP_CORS_ORIGINS (comma-separated origins such as
 * "http://localhost:5173"). `port` and `adminPort` are the service's other
 * listeners, which HTTP_PORT may not name.
 */
export function readHttpConfig(port: number, adminPort: number, env: Env = process.env): HttpConfig | undefined {
  const read = envReader(env);
  const text = read.optionalString("HTTP_PORT");
  if (text?.toLowerCase() === "off") return undefined;
  if (text !== undefined && (!/^\d+$/.test(text) || Number(text) > 65535))
    throw new ConfigError("HTTP_PORT", text, "a port from 0 to 65535 (0: a free one), or off");
  const httpPort = text === undefined ? defaultHttpPort(port) : Number(text);
  checkPortsApart([
    ["PORT", "", port],
    ["ADMIN_PORT", "", adminPort],
    ["HTTP_PORT", "", httpPort],
  ]);
  const origins = (read.optionalString("HTTP_CORS_ORIGINS") ?? "")
    .split(",")
    .map((origin) => origin.trim())
    .filter((origin) => origin !== "");
  const bad = origins.find((origin) => !isOrigin(origin));
  if (bad !== undefined) {
    throw new ConfigError(
      "HTTP_CORS_ORIGINS",
      env.HTTP_CORS_ORIGINS ?? "",
      `comma-separated origins such as "http://localhost:5173" (scheme, host and port; no path; "${bad}" is not one)`,
    );
  }
  return { port: httpPort, corsOrigins: origins };
}
