// A TCP proxy that delays what comes back: every chunk from the upstream
// reaches the caller `delayMs` later, in order, so a call through it takes
// that much longer on the network path, whatever the protocol above it
// (TLS included). It can also take the link down for a share of every
// period: at the start of each period it resets every connection and refuses
// new ones until the outage ends, as a flapping link does. Both change while
// it runs, through a small HTTP control listener (GET /delay?ms=N,
// GET /outage?share=S&periodMs=T).
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { connect, createServer, type Server, type Socket } from "node:net";

export interface DelayProxy {
  readonly port: number;
  readonly controlPort: number;
  delayMs: number;
  /** Takes the link down for `share` (0 to 0.9) of every `periodMs`; a share of 0 ends the outages. */
  setOutage(share: number, periodMs: number): void;
  /** Connections reset or refused by outages so far. */
  readonly cutConnections: number;
  close(): Promise<void>;
}

const outageForm =
  "GET /outage?share=S&periodMs=T, S from 0 to 0.9, T a whole number of milliseconds from 100 to 60000";
const delayForm = "GET /delay?ms=N, N a whole number of milliseconds from 0 to 10000";

export async function startDelayProxy(options: {
  listen: { host: string; port: number };
  upstream: { host: string; port: number };
  control: { host: string; port: number };
}): Promise<DelayProxy> {
  /** Each connection through the proxy: the caller's side and products'. */
  const links = new Set<{ downstream: Socket; upstream: Socket }>();
  const proxy = { delayMs: 0, down: false, cut: 0 };
  let outage: { every: NodeJS.Timeout; upAgain?: NodeJS.Timeout } | undefined;
  const stopOutages = () => {
    clearInterval(outage?.every);
    clearTimeout(outage?.upAgain);
    outage = undefined;
    proxy.down = false;
  };
  const setOutage = (share: number, periodMs: number) => {
    stopOutages();
    if (share === 0) return;
    const goDown = () => {
      proxy.down = true;
      proxy.cut += links.size;
      for (const { downstream, upstream } of links) {
        downstream.resetAndDestroy();
        upstream.resetAndDestroy();
      }
      links.clear();
      if (outage) outage.upAgain = setTimeout(() => (proxy.down = false), share * periodMs);
    };
    outage = { every: setInterval(goDown, periodMs) };
    goDown();
  };
  const server: Server = createServer((downstream) => {
    if (proxy.down) {
      proxy.cut++;
      downstream.resetAndDestroy();
      return;
    }
    const upstream = connect(options.upstream.port, options.upstream.host);
    const link = { downstream, upstream };
    links.add(link);
    downstream.pipe(upstream);
    // Each chunk leaves no sooner than the one before it, so a shorter delay set mid-stream cannot reorder bytes.
    let lastDue = 0;
    upstream.on("data", (chunk: Buffer) => {
      const due = Math.max(Date.now() + proxy.delayMs, lastDue);
      lastDue = due;
      setTimeout(() => downstream.write(chunk), due - Date.now());
    });
    upstream.on("end", () => setTimeout(() => downstream.end(), Math.max(0, lastDue - Date.now())));
    const close = () => {
      downstream.destroy();
      upstream.destroy();
      links.delete(link);
    };
    downstream.on("error", close).on("close", close);
    upstream.on("error", close).on("close", () => setTimeout(close, Math.max(0, lastDue - Date.now())));
  });
  const control: HttpServer = createHttpServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://control");
    const json = (body: object) =>
      response.writeHead(200, { "content-type": "application/json" }).end(`${JSON.stringify(body)}\n`);
    if (url.pathname === "/outage") {
      const share = Number(url.searchParams.get("share") ?? Number.NaN);
      const periodMs = Number(url.searchParams.get("periodMs") ?? Number.NaN);
      if (!(share >= 0 && share <= 0.9) || !Number.isInteger(periodMs) || periodMs < 100 || periodMs > 60_000) {
        response.writeHead(400).end(`${outageForm}\n`);
        return;
      }
      setOutage(share, periodMs);
      json({ share, periodMs });
      return;
    }
    const ms = Number(url.searchParams.get("ms"));
    if (url.pathname !== "/delay" || !Number.isInteger(ms) || ms < 0 || ms > 10_000) {
      response.writeHead(400).end(`${delayForm}\n${outageForm}\n`);
      return;
    }
    proxy.delayMs = ms;
    json({ delayMs: ms });
  });
  await new Promise<void>((resolve) => server.listen(options.listen.port, options.listen.host, resolve));
  await new Promise<void>((resolve) => control.listen(options.control.port, options.control.host, resolve));
  return {
    port: (server.address() as { port: number }).port,
    controlPort: (control.address() as { port: number }).port,
    get delayMs() {
      return proxy.delayMs;
    },
    set delayMs(value: number) {
      proxy.delayMs = value;
    },
    setOutage,
    get cutConnections() {
      return proxy.cut;
    },
    async close() {
      stopOutages();
      for (const { downstream, upstream } of links) {
        downstream.destroy();
        upstream.destroy();
      }
      await Promise.all([
        new Promise((resolve) => server.close(resolve)),
        new Promise((resolve) => control.close(resolve)),
      ]);
    },
  };
}
