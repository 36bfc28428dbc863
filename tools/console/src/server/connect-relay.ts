import type { IncomingMessage, ServerResponse } from "node:http";
import { Agent, request } from "node:https";
import { request as plainRequest } from "node:http";
import type { MeshService } from "../summary-types.js";

/**
 * The contracts a page may call through the relay, by their fully-qualified
 * service name. A Map, since the name comes from the request's path: on a
 * plain object `constructor` or `__proto__` would be found too.
 */
export const relayedServices: ReadonlyMap<string, MeshService> = new Map<string, MeshService>([
  ["shopmesh.users.v1.UsersService", "users"],
  ["shopmesh.products.v1.ProductsService", "products"],
  ["shopmesh.orders.v1.OrdersService", "orders"],
  ["shopmesh.userorders.v1.UserOrdersService", "user-orders"],
]);

/** Request headers the Connect protocol (and a trace) needs; nothing else is passed on. */
const forwarded = [
  "content-type",
  "content-length",
  "content-encoding",
  "accept-encoding",
  "authorization",
  "connect-protocol-version",
  "connect-timeout-ms",
  "connect-content-encoding",
  "connect-accept-encoding",
  "traceparent",
];
const hopByHop = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade"]);

/** A Connect error answer, as the services' HTTP port would give it. */
export function connectError(res: ServerResponse, httpStatus: number, code: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(httpStatus, { "content-type": "application/json" }).end(JSON.stringify({ code, message }));
}

export interface ConnectRelay {
  /** Relays `/rpc/<package.Service>/<Method>`; false when the path is not one. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  close(): void;
}

/**
 * Passes the page's Connect calls on to the services' HTTP ports (HTTPS
 * with the mesh's CA, or plain HTTP without TLS), so that the browser talks
 * only to the console's own origin and needs no certificate of the mesh.
 * The bytes are not decoded: the service checks the token, validates and
 * answers as it would a direct caller.
 */
export function createConnectRelay(
  /** `https://127.0.0.1:port` of a service's HTTP listener, or undefined while it is not running. */
  httpUrl: (service: MeshService) => string | undefined,
  ca: () => Buffer | undefined,
): ConnectRelay {
  let agent: { ca: Buffer; agent: Agent } | undefined;
  const agentFor = (pem: Buffer) => {
    if (agent?.ca !== pem) {
      agent?.agent.destroy();
      agent = { ca: pem, agent: new Agent({ keepAlive: true, ca: pem, maxSockets: 64 }) };
    }
    return agent.agent;
  };
  return {
    handle(req, res) {
      const [path = "", query] = (req.url ?? "").split("?", 2);
      const match = /^\/rpc\/([\w.]+)\/(\w+)$/.exec(path);
      if (!match) return false;
      const service = relayedServices.get(match[1]!);
      if (service === undefined) {
        connectError(res, 404, "unimplemented", `the console relays no service ${match[1]}`);
        return true;
      }
      const base = httpUrl(service);
      if (base === undefined) {
        connectError(res, 503, "unavailable", `${service} is not running`);
        return true;
      }
      const headers: Record<string, string | string[]> = {};
      for (const name of forwarded) {
        const value = req.headers[name];
        if (value !== undefined) headers[name] = value;
      }
      // A query string is a Connect GET's request (idempotent methods may be called that way).
      const url = new URL(`/${match[1]}/${match[2]}${query === undefined ? "" : `?${query}`}`, base);
      const send = url.protocol === "https:" ? request : plainRequest;
      const pem = ca();
      const outgoing = send(url, {
        method: req.method,
        headers,
        ...(url.protocol === "https:" && pem !== undefined ? { agent: agentFor(pem) } : {}),
      });
      outgoing.on("response", (answer) => {
        const out: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(answer.headers)) {
          if (value !== undefined && !hopByHop.has(name)) out[name] = value;
        }
        res.writeHead(answer.statusCode ?? 502, out);
        answer.pipe(res);
      });
      outgoing.on("error", (error) => connectError(res, 503, "unavailable", `${service}: ${error.message}`));
      // A page that gives up (navigates away, aborts) cancels the call downstream too.
      res.on("close", () => {
        if (!res.writableFinished) outgoing.destroy();
      });
      req.pipe(outgoing);
      return true;
    },
    close: () => agent?.agent.destroy(),
  };
}
