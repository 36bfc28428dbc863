// A TCP proxy that delays what comes back: every chunk from the upstream
// reaches the caller `delayMs` later, in order, so a call through it takes
// that much longer on the network path, whatever the protocol above it
// (TLS included). The delay can be changed while it runs, through a small
// HTTP control listener (GET /delay?ms=N).
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { connect, createServer, type Server, type Socket } from "node:net";

export interface DelayProxy {
  readonly port: number;
  readonly controlPort: number;
  delayMs: number;
  close(): Promise<void>;
}

export async function startDelayProxy(options: {
  listen: { host: string; port: number };
  upstream: { host: string; port: number };
  control: { host: string; port: number };
}): Promise<DelayProxy> {
  const sockets = new Set<Socket>();
  const proxy = { delayMs: 0 };
  const server: Server = createServer((downstream) => {
    const upstream = connect(options.upstream.port, options.upstream.host);
    sockets.add(downstream).add(upstream);
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
      sockets.delete(downstream);
      sockets.delete(upstream);
    };
    downstream.on("error", close).on("close", close);
    upstream.on("error", close).on("close", () => setTimeout(close, Math.max(0, lastDue - Date.now())));
  });
  const control: HttpServer = createHttpServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://control");
    const ms = Number(url.searchParams.get("ms"));
    if (url.pathname !== "/delay" || !Number.isInteger(ms) || ms < 0 || ms > 10_000) {
      response.writeHead(400).end("GET /delay?ms=N, N a whole number of milliseconds from 0 to 10000\n");
      return;
    }
    proxy.delayMs = ms;
    response.writeHead(200, { "content-type": "application/json" }).end(`${JSON.stringify({ delayMs: ms })}\n`);
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
    async close() {
      for (const socket of sockets) socket.destroy();
      await Promise.all([
        new Promise((resolve) => server.close(resolve)),
        new Promise((resolve) => control.close(resolve)),
      ]);
    },
  };
}
