// Connection limits, over real sockets: a connection that does not complete
// the HTTP/2 handshake in time is closed, while clients that do keep
// working; the per-connection stream limit is advertised; idle connections
// are closed, old ones are asked to go away, and connections beyond the cap
// are closed as they arrive.
import { once } from "node:events";
import http2 from "node:http2";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@shopmesh/sdk/health/v1";
import {
  createLogger,
  defaultConnectionConfig,
  hosted,
  startServer,
  type ConnectionConfig,
  type RunningServer,
} from "@shopmesh/chassis";
import { EchoService } from "../../../gen/shopmesh/echo/v1/echo_pb.js";
import { createEchoService } from "./support/echo-service.js";

const handshakeTimeoutMs = 300;

async function startWithConnections(connections: Partial<ConnectionConfig>): Promise<RunningServer> {
  return startServer({
    config: {
      host: "127.0.0.1",
      port: 0,
      shutdownDelayMs: 0,
      shutdownGraceMs: 1_000,
      maxRequestBytes: 1024 * 1024,
      connections: { ...defaultConnectionConfig, ...connections },
    },
    logger: createLogger("connections-test", "silent"),
    services: [hosted(EchoService, createEchoService())],
  });
}

/** Opens a raw TCP connection, writes `bytes`, and resolves with how long the server took to close it. */
async function closedAfterMs(port: number, bytes: Buffer | undefined): Promise<number> {
  const socket = net.connect({ host: "127.0.0.1", port });
  socket.on("error", () => undefined);
  socket.resume();
  await once(socket, "connect");
  const connected = performance.now();
  if (bytes !== undefined) socket.write(bytes);
  await once(socket, "close");
  return performance.now() - connected;
}

/** An HTTP/2 session that has exchanged settings with the server. */
async function rawSession(address: string): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`http://${address}`);
  session.on("error", () => undefined);
  await once(session, "remoteSettings");
  return session;
}

/** A Health/Watch stream on a raw session, which stays open until cancelled. */
function openWatch(session: http2.ClientHttp2Session): http2.ClientHttp2Stream {
  const stream = session.request({
    ":method": "POST",
    ":path": "/grpc.health.v1.Health/Watch",
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.on("error", () => undefined);
  stream.resume();
  // One length-prefixed, empty HealthCheckRequest, and the end of the request.
  stream.end(Buffer.from([0, 0, 0, 0, 0]));
  return stream;
}

describe("handshake timeout, idle timeout and stream limit", () => {
  let server: RunningServer;
  let transport: GrpcTransport;

  beforeAll(async () => {
    server = await startWithConnections({
      handshakeTimeoutMs,
      idleTimeoutMs: 1_500,
      maxAgeMs: 0,
      maxAgeGraceMs: 0,
      maxConcurrentStreams: 7,
    });
    transport = createTransport({ target: server.address });
  });

  afterAll(async () => {
    transport?.close();
    await server?.stop();
  });

  it("closes sockets that send nothing, or half the preface, after the handshake timeout", async () => {
    const silent = [
      closedAfterMs(server.port, undefined),
      closedAfterMs(server.port, undefined),
      closedAfterMs(server.port, undefined),
    ];
    const halfPreface = closedAfterMs(server.port, Buffer.from("PRI * HTTP/2.0\r\n", "latin1"));
    // A normal client is served while they wait.
    const health = createClient(Health, transport);
    expect((await health.check({})).status).toBe(ServingStatus.SERVING);
    for (const elapsedMs of await Promise.all([...silent, halfPreface])) {
      expect(elapsedMs).toBeGreaterThanOrEqual(handshakeTimeoutMs - 50);
      expect(elapsedMs).toBeLessThan(10_000);
    }
    expect((await createClient(EchoService, transport).echo({ message: "after" })).message).toBe("after");
  });

  it("hands what is not HTTP/2 to HTTP/2 at once, which refuses it", async () => {
    const elapsedMs = await closedAfterMs(server.port, Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "latin1"));
    expect(elapsedMs).toBeLessThan(handshakeTimeoutMs);
  });

  it("keeps a connection that completed the handshake past the handshake timeout, and advertises the stream limit", async () => {
    const session = await rawSession(server.address);
    try {
      expect(session.remoteSettings.maxConcurrentStreams).toBe(7);
      await new Promise((resolve) => setTimeout(resolve, handshakeTimeoutMs * 2));
      expect(session.closed).toBe(false);
      expect(session.destroyed).toBe(false);
      // The connection still carries calls.
      const watch = openWatch(session);
      const [headers] = (await once(watch, "response")) as [http2.IncomingHttpHeaders];
      expect(headers[":status"]).toBe(200);
      watch.close(http2.constants.NGHTTP2_CANCEL);
    } finally {
      session.destroy();
    }
  });

  it("holds a connection to the stream limit: the 8th call waits until one of 7 ends", async () => {
    const session = await rawSession(server.address);
    try {
      const watches = Array.from({ length: 7 }, () => openWatch(session));
      await Promise.all(watches.map((watch) => once(watch, "response")));
      const eighth = openWatch(session);
      const answered = once(eighth, "response").then(() => "answered");
      const first = await Promise.race([
        answered,
        new Promise<string>((resolve) => setTimeout(() => resolve("waiting"), 500)),
      ]);
      expect(first).toBe("waiting");
      watches[0]!.close(http2.constants.NGHTTP2_CANCEL);
      expect(await answered).toBe("answered");
    } finally {
      session.destroy();
    }
  });

  it("closes a connection that has had no calls for the idle timeout", async () => {
    const started = performance.now();
    const session = await rawSession(server.address);
    await once(session, "close");
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_000);
  });
});

describe("maximum connection age", () => {
  let server: RunningServer;

  beforeAll(async () => {
    server = await startWithConnections({
      handshakeTimeoutMs: 10_000,
      idleTimeoutMs: 0,
      maxAgeMs: 500,
      maxAgeGraceMs: 300,
      maxConcurrentStreams: 100,
    });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it("asks a busy connection to go away after the maximum age and closes it after the grace period", async () => {
    // The server times the age from when it accepted the connection, before the session is ready here.
    const started = performance.now();
    const session = await rawSession(server.address);
    const watch = openWatch(session);
    await once(watch, "response");
    const goaway = once(session, "goaway");
    const closed = once(session, "close");
    await goaway;
    // grpc-js spreads the age by ±10 %.
    expect(performance.now() - started).toBeGreaterThanOrEqual(400);
    // The open stream is cut when the grace period is over.
    await closed;
    expect(watch.destroyed).toBe(true);
  });
});

describe("maximum connections", () => {
  let server: RunningServer;

  beforeAll(async () => {
    server = await startWithConnections({ handshakeTimeoutMs: 1_000, maxConnections: 2 });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it("closes connections beyond the cap as they arrive, and takes new ones once there is room", async () => {
    const sockets = [
      net.connect({ host: "127.0.0.1", port: server.port }),
      net.connect({ host: "127.0.0.1", port: server.port }),
    ];
    for (const socket of sockets) socket.on("error", () => undefined);
    await Promise.all(sockets.map((socket) => once(socket, "connect")));
    try {
      // The third is closed at once, long before the handshake timeout would.
      expect(await closedAfterMs(server.port, undefined)).toBeLessThan(1_000);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
    // Room again: a client gets in.
    const transport = createTransport({ target: server.address });
    try {
      expect((await createClient(EchoService, transport).echo({ message: "in" })).message).toBe("in");
    } finally {
      transport.close();
    }
  });
});
