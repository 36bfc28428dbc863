// The HTTP listener (Connect, gRPC-Web) of a real service process: its
// settings, its share of the gRPC port's admission control, its drain on
// SIGTERM, CORS, errors that must not leak, and its timeouts and limits.
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { ConfigError, readHttpConfig } from "@shopmesh/chassis";
import { parsePrometheusText, spawnService, type ServiceProcess } from "@shopmesh/cli";
import { createTransport, retryPushbackMs, type GrpcTransport } from "@shopmesh/sdk";
import { afterEach, describe, expect, it, vi } from "vitest";
import { EchoService } from "../../../gen/shopmesh/echo/v1/echo_pb.js";
import { arrivalGraceMs } from "../src/server/request-arrivals.js";
import { asConnectError, settle } from "./support/call-outcome.js";
import { refusedStart } from "../../../test/support/refused-start.js";

const echoMain = fileURLToPath(new URL("./support/echo-main.ts", import.meta.url));

const processes: ServiceProcess[] = [];
const transports: GrpcTransport[] = [];

afterEach(async () => {
  for (const transport of transports.splice(0)) transport.close();
  await Promise.all(
    processes.splice(0).map(async (service) => {
      if (service.child.exitCode === null && service.child.signalCode === null) await service.stop("SIGKILL");
    }),
  );
});

async function startEcho(env: Record<string, string> = {}) {
  const service = await spawnService({ entry: echoMain, env: { TLS: "off", ...env } });
  processes.push(service);
  const baseUrl = `http://127.0.0.1:${service.httpPort}`;
  const grpcTransport = createTransport({ target: service.address });
  transports.push(grpcTransport);
  return {
    service,
    baseUrl,
    grpc: createClient(EchoService, grpcTransport),
    connect: createClient(EchoService, createConnectTransport({ baseUrl })),
    grpcWeb: createClient(EchoService, createGrpcWebTransport({ baseUrl })),
  };
}

/** Unary calls the service is running now, from its admission gauge. */
async function callsRunning(service: ServiceProcess): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text();
  return parsePrometheusText(text).find((s) => s.name === "shopmesh_admission_calls" && s.labels.queue === "running")
    ?.value;
}

function configError(read: () => unknown): ConfigError {
  try {
    read();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("no ConfigError");
}

describe("readHttpConfig", () => {
  it("puts the HTTP listener 1000 above the gRPC port, on a free port for port 0, and off when told", () => {
    expect(readHttpConfig(50052, 30052, {})).toEqual({ port: 51052, corsOrigins: [] });
    expect(readHttpConfig(65000, 45000, {})?.port).toBe(64000);
    expect(readHttpConfig(0, 0, {})?.port).toBe(0);
    expect(readHttpConfig(50052, 30052, { HTTP_PORT: "8080" })?.port).toBe(8080);
    expect(readHttpConfig(50052, 30052, { HTTP_PORT: "off" })).toBeUndefined();
    expect(
      readHttpConfig(0, 0, { HTTP_CORS_ORIGINS: "http://localhost:5173, https://shop.example" })?.corsOrigins,
    ).toEqual(["http://localhost:5173", "https://shop.example"]);
  });

  it.each([
    ["HTTP_PORT", "http"],
    ["HTTP_PORT", "65536"],
    ["HTTP_PORT", "-1"],
    ["HTTP_PORT", "50052"],
    ["HTTP_PORT", "30052"],
    ["HTTP_CORS_ORIGINS", "*"],
    ["HTTP_CORS_ORIGINS", "http://localhost:5173/app"],
    ["HTTP_CORS_ORIGINS", "localhost:5173"],
  ])("rejects %s=%j with a ConfigError naming it", (variable, value) => {
    const error = configError(() => readHttpConfig(50052, 30052, { [variable]: value }));
    expect([error.variable, error.value]).toEqual([variable, value]);
  });

  it("stops a service whose HTTP_PORT is bad with exit code 2, naming the variable", async () => {
    const failed = await refusedStart({ entry: echoMain, env: { TLS: "off", HTTP_PORT: "web" } });
    expect(String(failed)).toContain("exited with 2");
    expect(String(failed)).toContain('HTTP_PORT="web" is not valid');
  });
});

describe("a service's HTTP listener", () => {
  it("is named in the ready line, and absent with HTTP_PORT=off", async () => {
    const { service, connect } = await startEcho();
    expect(service.logs.find((line) => line.msg === "ready")).toMatchObject({ httpPort: service.httpPort });
    expect(service.httpPort).not.toBe(service.port);
    expect((await connect.echo({ message: "hi" })).message).toBe("hi");
    const off = await startEcho({ HTTP_PORT: "off" });
    expect(off.service.httpPort).toBeUndefined();
  });

  it("answers a handler's plain Error with INTERNAL and a generic message, logged in full", async () => {
    const { service, connect, grpcWeb } = await startEcho();
    for (const client of [connect, grpcWeb]) {
      const error = asConnectError(
        (await settle(client.echo({ message: "x" }, { headers: { "x-throw": "1" } }))).error,
      );
      expect([error.code, error.rawMessage]).toEqual([Code.Internal, "internal error"]);
    }
    await expect.poll(() => service.logs.filter((line) => line.msg === "handler failed").length).toBe(2);
  });

  it("refuses a timeout longer than a timer holds with invalid_argument, and serves one just under it", async () => {
    const { baseUrl } = await startEcho();
    const echo = (timeoutMs: number) =>
      fetch(`${baseUrl}/${EchoService.typeName}/Echo`, {
        method: "POST",
        headers: { "content-type": "application/json", "connect-timeout-ms": String(timeoutMs) },
        body: '{"message":"hi"}',
      });
    const tooLong = await echo(2_200_000_000);
    expect(tooLong.status).toBe(400);
    expect(await tooLong.json()).toMatchObject({
      code: "invalid_argument",
      message: "timeout 2200000000ms must be <= 2147483647",
    });
    const longest = await echo(2 ** 31 - 1);
    expect([longest.status, await longest.json()]).toEqual([200, { message: "hi" }]);
  });

  it("keeps no more requests whose bodies never end than the server holds calls, closing the oldest", async () => {
    // Slots and queue together: at most 2 requests still arriving are kept.
    const { service, baseUrl } = await startEcho({
      MAX_CALLS_IN_FLIGHT: "1",
      MAX_CALLS_QUEUED: "1",
      METRICS_PORT: "0",
    });
    const unfinished = async () => {
      const socket = connect(service.httpPort!, "127.0.0.1");
      await once(socket, "connect");
      socket.on("error", () => {});
      socket.write(
        `POST /${EchoService.typeName}/Echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"message":`,
      );
      return socket;
    };
    // Taken before the first is sent, so that the server saw none of them earlier.
    const sentAt = performance.now();
    const sockets: Socket[] = [];
    for (let n = 0; n < 4; n++) sockets.push(await unfinished());
    // Four connections need not reach the server in the order they were opened: which two it
    // finds oldest is its to tell (the gRPC test, on one connection, checks the order).
    const closed = () => sockets.filter((socket) => socket.closed);
    try {
      await vi.waitFor(() => expect(closed()).toHaveLength(2), { timeout: 10_000 });
      expect(performance.now() - sentAt).toBeGreaterThanOrEqual(arrivalGraceMs - 5);
      const kept = sockets.filter((socket) => !socket.closed);

      // A whole request arriving now makes one too many: the older of the two still arriving gives way to it.
      const answer = await fetch(`${baseUrl}/${EchoService.typeName}/Echo`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"message":"whole"}',
      });
      expect([answer.status, await answer.json()]).toEqual([200, { message: "whole" }]);
      await vi.waitFor(() => expect(closed()).toHaveLength(3), { timeout: 10_000 });
      expect(kept.filter((socket) => !socket.closed)).toHaveLength(1);
      // Counted once each, as cut: the body connect then fails to read is not counted again as undecodable.
      const refused = parsePrometheusText(
        await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text(),
      ).filter((sample) => sample.name === "shopmesh_calls_refused_total");
      expect(refused.map((sample) => [sample.labels.rpc_grpc_status_code, sample.value])).toEqual([["8", 3]]);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });

  it("shares admission control with the gRPC port: a full server refuses either with RESOURCE_EXHAUSTED", async () => {
    const echo = await startEcho({ MAX_CALLS_IN_FLIGHT: "1", MAX_CALLS_QUEUED: "0" });
    const slow = { headers: { "x-delay-ms": "5000" } };
    const codeOf = async (call: Promise<unknown>) => ((await settle(call)).error as { code?: Code } | undefined)?.code;
    // Until the slow call is in, calls go through; once it holds the only slot, they are refused.
    const overGrpc = settle(echo.grpc.echo({ message: "slow" }, slow));
    await expect
      .poll(() => codeOf(echo.connect.echo({ message: "late" })), { timeout: 4_000 })
      .toBe(Code.ResourceExhausted);
    const refused = asConnectError((await settle(echo.grpcWeb.echo({ message: "late" }))).error);
    expect([refused.code, refused.rawMessage]).toEqual([
      Code.ResourceExhausted,
      expect.stringMatching(/^server overloaded: 1 calls in progress/),
    ]);
    // With how long to wait, as the gRPC port says it.
    expect(retryPushbackMs(refused)).toBeGreaterThan(0);
    expect((await overGrpc).value?.message).toBe("slow");
    // And an HTTP call holds it from gRPC. The slot of the call that just ended may not be free yet
    // (it is given back once the server has seen the call close), nor while a "late" call below runs:
    // a refused slow call is sent again.
    const overHttp = (async () => {
      let outcome = await settle(echo.grpcWeb.echo({ message: "slow" }, slow));
      for (let attempt = 1; attempt < 100; attempt++) {
        if ((outcome.error as { code?: Code } | undefined)?.code !== Code.ResourceExhausted) break;
        outcome = await settle(echo.grpcWeb.echo({ message: "slow" }, slow));
      }
      return outcome;
    })();
    await expect
      .poll(() => codeOf(echo.grpc.echo({ message: "late" })), { timeout: 4_000 })
      .toBe(Code.ResourceExhausted);
    expect((await overHttp).value?.message).toBe("slow");
  });

  it("lets in-flight calls finish on SIGTERM, ends streams, and closes", async () => {
    const { service, connect, baseUrl } = await startEcho({ SHUTDOWN_GRACE: "10s" });
    const inFlight = connect.echo({ message: "finishing" }, { headers: { "x-delay-ms": "2000" } });
    let streaming = false;
    const stream = (async () => {
      const received: number[] = [];
      for await (const message of connect.echoStream({ message: "s", count: 1000, intervalMs: 50 })) {
        received.push(message.index);
        streaming = true;
      }
      return received;
    })();
    // SIGTERM once both are being served.
    await expect.poll(() => streaming, { timeout: 5_000 }).toBe(true);
    await expect.poll(() => callsRunning(service), { timeout: 5_000 }).toBe(1);
    const started = performance.now();
    const exit = service.stop("SIGTERM");
    expect((await inFlight).message).toBe("finishing");
    // The stream ends cleanly when the server stops, not at the end of the grace period.
    expect((await stream).length).toBeGreaterThan(0);
    expect(await exit).toBe(0);
    expect(performance.now() - started).toBeLessThan(5_000);
    await expect(fetch(`${baseUrl}/`)).rejects.toThrow();
  });

  it("answers calls still running when the grace period is over with UNAVAILABLE", async () => {
    const { service, connect, grpcWeb } = await startEcho({ SHUTDOWN_GRACE: "300ms" });
    const calls = [connect, grpcWeb].map((client) =>
      settle(client.echo({ message: "stuck" }, { headers: { "x-delay-ms": "20000" } })),
    );
    await expect.poll(() => callsRunning(service), { timeout: 5_000 }).toBe(2);
    const exit = service.stop("SIGTERM");
    for (const call of calls) {
      const error = asConnectError((await call).error);
      expect(error.code).toBe(Code.Unavailable);
      expect(error.rawMessage).toMatch(/shutting down/);
    }
    expect(await exit).toBe(0);
  });

  it("answers a request with more than 100 headers 431, naming the limit, rather than dropping the rest", async () => {
    // The size limit bounds what such a request holds, whatever Node.js is told.
    const { baseUrl, connect } = await startEcho({ NODE_OPTIONS: "--max-http-header-size=65536" });
    const junk = Object.fromEntries(Array.from({ length: 99 }, (_, i) => [`x-junk-${i}`, "1"]));
    const send = (headers: Record<string, string>) =>
      fetch(`${baseUrl}/shopmesh.echo.v1.EchoService/Echo`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: '{"message":"x"}',
      });
    // fetch adds host, connection, accept, accept-language, sec-fetch-mode, user-agent, accept-encoding and content-length.
    const refusal = { code: "invalid_argument", message: "more than 100 request headers: send fewer" };
    const tooMany = await send({ ...junk, authorization: "Bearer x" });
    expect(tooMany.status).toBe(431);
    expect(await tooMany.json()).toEqual(refusal);
    const manyMore = await send(Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`x-${i}`, ""])));
    expect(manyMore.status).toBe(431);
    expect(await manyMore.json()).toEqual(refusal);
    const large = await send({ "x-large": "x".repeat(20_000) });
    expect(large.status).toBe(431);
    await large.body?.cancel();
    const fewer = await send(Object.fromEntries(Object.entries(junk).slice(0, 80)));
    expect(fewer.status).toBe(200);
    expect((await connect.echo({ message: "after" })).message).toBe("after");
  });

  it("allows only the configured origins (CORS)", async () => {
    const origin = "http://localhost:5173";
    const { baseUrl } = await startEcho({ HTTP_CORS_ORIGINS: origin });
    const preflight = (from: string) =>
      fetch(`${baseUrl}/${EchoService.typeName}/Echo`, {
        method: "OPTIONS",
        headers: {
          origin: from,
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type,authorization,connect-timeout-ms",
        },
      });
    const allowed = await preflight(origin);
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get("access-control-allow-origin")).toBe(origin);
    expect(allowed.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
    expect(allowed.headers.get("access-control-allow-methods")).toContain("POST");
    expect((await preflight("http://evil.example")).headers.get("access-control-allow-origin")).toBeNull();
    const call = await fetch(`${baseUrl}/${EchoService.typeName}/Echo`, {
      method: "POST",
      headers: { origin, "content-type": "application/json" },
      body: '{"message":"hi"}',
    });
    expect(call.headers.get("access-control-allow-origin")).toBe(origin);
    expect(call.headers.get("access-control-expose-headers")).toContain("Grpc-Status");

    // No origins configured: no CORS headers at all, so browsers keep to the same origin.
    const closed = await startEcho();
    const answer = await fetch(`${closed.baseUrl}/${EchoService.typeName}/Echo`, {
      method: "POST",
      headers: { origin, "content-type": "application/json" },
      body: '{"message":"hi"}',
    });
    expect([answer.status, answer.headers.get("access-control-allow-origin")]).toEqual([200, null]);
  });

  it("closes a connection whose request headers do not arrive within HANDSHAKE_TIMEOUT", async () => {
    const { service } = await startEcho({ HANDSHAKE_TIMEOUT: "300ms" });
    const socket = connect(service.httpPort!, "127.0.0.1");
    await once(socket, "connect");
    socket.write("POST /shopmesh.echo.v1.EchoService/Echo HTTP/1.1\r\nHost: x\r\n");
    let answer = "";
    socket.setEncoding("utf8").on("data", (chunk: string) => (answer += chunk));
    const started = performance.now();
    await once(socket, "close");
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(answer).toMatch(/^HTTP\/1.1 408/);
  });

  it("closes connections beyond MAX_CONNECTIONS", async () => {
    const { service } = await startEcho({ MAX_CONNECTIONS: "2" });
    const held = await Promise.all(
      [1, 2].map(async () => {
        const socket = connect(service.httpPort!, "127.0.0.1");
        await once(socket, "connect");
        return socket;
      }),
    );
    const extra = connect(service.httpPort!, "127.0.0.1");
    extra.on("error", () => undefined);
    await once(extra, "close");
    for (const socket of held) socket.destroy();
    expect(held.every((socket) => socket.destroyed)).toBe(true);
  });
});
