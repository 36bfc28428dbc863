import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { createKeySetVerifier, type TokenVerifier } from "@shopmesh/chassis";
import { createClient, createTransport } from "@shopmesh/sdk";
import { UsersService } from "@shopmesh/sdk/users/v1";
import {
  type LoadControl,
  type MeshService,
  type MeshSummary,
  maxLoadRate,
  meshServices,
  minLoadRate,
} from "../summary-types.js";
import { createAdminRelay, requireAdminToken } from "./admin-relay.js";
import { createConnectRelay } from "./connect-relay.js";
import { ScrapeHistory, summaryMetricFamilies } from "./mesh-summary.js";
import { parsePrometheusText } from "@shopmesh/cli";
import { serveStatic } from "./static-files.js";
import { receiveOtlp, TraceStore } from "./trace-store.js";
import { ViewLoad } from "./view-load.js";

/** Where a running service listens; undefined fields for listeners it does not have. */
export interface ServiceEndpoints {
  /** `127.0.0.1:port` of its gRPC listener. */
  address: string;
  adminPort: number;
  httpPort: number | undefined;
  metricsPort: number | undefined;
}

export interface ConsoleOptions {
  /** Default 127.0.0.1: the console relays admin calls, so it stays on loopback unless told otherwise. */
  host?: string;
  /** 0 for any free port. */
  port: number;
  /** Where each service listens now, or undefined while it is not running. */
  endpoints: (service: MeshService) => ServiceEndpoints | undefined;
  /** The mesh's CA (PEM) when the services serve TLS; asked for at each new connection, since it may be made after the console starts. */
  ca: () => Buffer | undefined;
  /** The built page. */
  pageDir: string;
  /** The user whose view the built-in load asks for; undefined until there is one (the demo data is seeded). */
  loadUserId: () => string | undefined;
  /** How often the metrics are scraped and the page updated while someone watches. */
  intervalMs?: number;
}

export interface RunningConsole {
  /** `http://127.0.0.1:port`. */
  readonly url: string;
  /** Where the services send their spans: OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly otlpEndpoint: string;
  /** Pages open now. */
  readonly watchers: number;
  close(): Promise<void>;
}

/** The answer to anything not understood: a JSON error with an HTTP status. */
function fail(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ error: message }));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 4096) throw new RangeError("body too large");
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

const httpStatusOf = (code: Code) =>
  code === Code.Unauthenticated ? 401 : code === Code.PermissionDenied ? 403 : code === Code.Unavailable ? 503 : 400;

/**
 * The console's server: the built page, the Connect relay to the services
 * (`/rpc/...`), the fault-injection relay (`/admin/<service>/...`), the
 * mesh's state as server-sent events (`/api/events`), the built-in load
 * (`/api/load`), traces (`/api/traces/<id>`, fed at `/v1/traces` by the
 * services' OTLP exporters). It scrapes the metrics only while a page is
 * open, and stops the load and forgets the traces when the last one closes.
 */
export async function startConsole(options: ConsoleOptions): Promise<RunningConsole> {
  const host = options.host ?? "127.0.0.1";
  const intervalMs = options.intervalMs ?? 500;
  // A busy service may take longer than one interval to answer; a tick waits for the one before it.
  const scrapeTimeoutMs = Math.max(intervalMs, 1000);
  const endpoints = options.endpoints;
  const tls = (service: MeshService) => {
    const ca = options.ca();
    return ca === undefined ? undefined : { ca, service };
  };

  const verifier: TokenVerifier = createKeySetVerifier({
    async fetchKeys() {
      const users = endpoints("users");
      if (users === undefined) throw new ConnectError("users is not running", Code.Unavailable);
      const transport = createTransport({ target: users.address, tls: tls("users") });
      try {
        const { keys } = await createClient(UsersService, transport).getSigningKeys({}, { timeoutMs: 2000 });
        return keys.map((key) => ({ keyId: key.keyId, publicKey: key.publicKey }));
      } finally {
        transport.close();
      }
    },
    minRefreshIntervalMs: 5000,
  });
  const rpc = createConnectRelay((service) => {
    const port = endpoints(service)?.httpPort;
    return port === undefined ? undefined : `${options.ca() === undefined ? "http" : "https"}://127.0.0.1:${port}`;
  }, options.ca);
  const admin = createAdminRelay((service) => {
    const found = endpoints(service);
    return found === undefined ? undefined : `127.0.0.1:${found.adminPort}`;
  }, verifier);
  const load = new ViewLoad({
    target: () => endpoints("user-orders")?.address,
    tls: () => tls("user-orders"),
  });
  const traces = new TraceStore();
  const history = new ScrapeHistory();
  const pages = new Set<ServerResponse>();
  let ticker: NodeJS.Timeout | undefined;

  const familiesQuery = summaryMetricFamilies.map((name) => `name=${name}`).join("&");
  const scrape = async (service: MeshService) => {
    const atMs = Date.now();
    const port = endpoints(service)?.metricsPort;
    if (port === undefined) return { service, atMs, error: "not running (or without metrics)" };
    try {
      const answer = await fetch(`http://127.0.0.1:${port}/metrics?${familiesQuery}`, {
        signal: AbortSignal.timeout(scrapeTimeoutMs),
      });
      if (!answer.ok) return { service, atMs, error: `metrics answered HTTP ${answer.status}` };
      return { service, atMs, samples: parsePrometheusText(await answer.text()) };
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code;
      return { service, atMs, error: cause === "ECONNREFUSED" ? "not answering" : (error as Error).message };
    }
  };
  const summary = (): MeshSummary => ({
    atMs: Date.now(),
    windowSeconds: history.windowMs / 1000,
    services: history.services(meshServices),
    edges: history.edges(),
    streams: history.streams(),
    load: load.state(),
    latestTraceId: traces.latestViewTraceId,
  });
  let ticking = false;
  const tick = async () => {
    if (ticking) return;
    ticking = true;
    try {
      for (const result of await Promise.all(meshServices.map(scrape))) history.add(result);
      const data = `data: ${JSON.stringify(summary())}\n\n`;
      for (const page of pages) page.write(data);
    } finally {
      ticking = false;
    }
  };
  const watch = (req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    });
    res.write(`retry: 1000\n\n`);
    pages.add(res);
    if (ticker === undefined) {
      ticker = setInterval(() => void tick(), intervalMs);
      void tick();
    }
    req.on("close", () => {
      pages.delete(res);
      if (pages.size > 0) return;
      // Nobody watches: no scraping, no load, no traces kept.
      clearInterval(ticker);
      ticker = undefined;
      load.stop();
      history.clear();
      traces.clear();
    });
  };

  const setLoad = async (req: IncomingMessage, res: ServerResponse) => {
    try {
      const token = await requireAdminToken(req.headers.authorization, verifier);
      if (pages.size === 0) {
        fail(res, 409, "the load runs only while a console page is open");
        return;
      }
      const userId = options.loadUserId();
      if (userId === undefined)
        throw new ConnectError("no demo user to load: the demo data is not seeded yet", Code.Unavailable);
      const body = (await readJson(req)) as Partial<LoadControl>;
      const rate = body.ratePerSecond;
      // Written so that NaN and the Infinity JSON.parse makes of 1e999 are refused too.
      if (typeof rate !== "number" || (rate !== 0 && !(rate >= minLoadRate && rate <= maxLoadRate))) {
        fail(res, 400, `ratePerSecond: must be 0 (off) or from ${minLoadRate} to ${maxLoadRate} views a second`);
        return;
      }
      load.set(rate, token, userId);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ratePerSecond: rate }));
    } catch (error) {
      if (error instanceof ConnectError) fail(res, httpStatusOf(error.code), error.rawMessage);
      else fail(res, 400, `not a load setting: ${(error as Error).message}`);
    }
  };

  let port = options.port;
  const server = createServer((req, res) => {
    // One bad request must not end the console, nor the `npm start` it runs in with the services under it.
    try {
      route(req, res);
    } catch (error) {
      if (res.headersSent) res.destroy();
      else fail(res, 500, `the console failed on ${req.method} ${req.url}: ${(error as Error).message}`);
    }
  });
  const route = (req: IncomingMessage, res: ServerResponse) => {
    // The console relays admin calls: only pages it served itself, by the address it listens on, may reach it.
    const hostHeader = req.headers.host ?? "";
    if (hostHeader !== `${host}:${port}` && hostHeader !== `localhost:${port}`) {
      fail(res, 421, `this console answers only to ${host}:${port}`);
      return;
    }
    const path = (req.url ?? "/").split("?")[0]!;
    if (rpc.handle(req, res) || admin.handle(req, res)) return;
    if (path === "/v1/traces") {
      void receiveOtlp(req, res, traces, () => pages.size > 0);
      return;
    }
    if (path === "/api/events" && req.method === "GET") return watch(req, res);
    if (path === "/api/load" && req.method === "POST") {
      void setLoad(req, res);
      return;
    }
    const traceId = /^\/api\/traces\/([0-9a-f]{32})$/.exec(path)?.[1];
    if (traceId !== undefined && req.method === "GET") {
      // A view's spans reach the console a moment after its answer: none yet is an answer, not an error.
      const view = traces.view(traceId) ?? { traceId, bars: [], events: [] };
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(view));
      return;
    }
    if (req.method === "GET" || req.method === "HEAD") return serveStatic(options.pageDir, req, res);
    fail(res, 405, `${req.method} ${path}: not served here`);
  };
  server.listen(options.port, host);
  await once(server, "listening");
  port = (server.address() as AddressInfo).port;
  const url = `http://${host}:${port}`;

  return {
    url,
    otlpEndpoint: url,
    get watchers() {
      return pages.size;
    },
    async close() {
      clearInterval(ticker);
      load.close();
      rpc.close();
      for (const page of pages) page.end();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
