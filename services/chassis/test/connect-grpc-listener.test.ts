// GRPC_SERVER=connect-node: the gRPC port served by connect-node's adapter on
// node:http2 answers grpc-js and connect-node clients alike, with the same
// interceptors and admission as grpc-js's port, health outside both, and a
// drain that lets a call in flight finish. Real HTTP/2 over loopback.
import { ConnectError, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { Code, createClient, createTransport, type GrpcTransport, type TransportKind } from "@shopmesh/sdk";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@shopmesh/sdk/health/v1";
import { createLogger, hosted, readServerConfig, startServer, type RunningServer } from "@shopmesh/chassis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { EchoService } from "../../../gen/shopmesh/echo/v1/echo_pb.js";
import { asConnectError, settle } from "./support/call-outcome.js";

const intercepted: string[] = [];
/** Stands for the services' own interceptors (auth, metrics): it must see every call but health's. */
const recordMethods: Interceptor = (next) => (request) => {
  intercepted.push(request.method.name);
  return next(request);
};

let server: RunningServer;
const blocked = new Map<string, () => void>();
const transports: GrpcTransport[] = [];

const echo: ServiceImpl<typeof EchoService> = {
  async echo(request) {
    if (request.message.startsWith("fail:")) throw new ConnectError(request.message, Code.InvalidArgument);
    if (request.message.startsWith("block"))
      await new Promise<void>((resolve) => blocked.set(request.message, resolve));
    return { message: request.message };
  },
  async *echoStream(request) {
    yield { message: request.message, index: 0 };
  },
};

function client(kind: TransportKind) {
  const transport = createTransport({ target: server.address, kind });
  transports.push(transport);
  return createClient(EchoService, transport);
}

beforeAll(async () => {
  server = await startServer({
    config: {
      host: "127.0.0.1",
      port: 0,
      shutdownDelayMs: 0,
      shutdownGraceMs: 5_000,
      maxRequestBytes: 1024 * 1024,
      grpcServer: "connect-node",
      admission: { maxCallsInFlight: 1, maxCallsQueued: 0, maxQueueWaitMs: 250 },
    },
    logger: createLogger("connect-grpc-test", "silent"),
    services: [hosted(EchoService, echo)],
    interceptors: [recordMethods],
  });
});

afterAll(async () => {
  for (const resolve of blocked.values()) resolve();
  for (const transport of transports) transport.close();
  await server?.stop();
});

describe("the gRPC port served by connect-node (GRPC_SERVER=connect-node)", () => {
  it("is chosen with GRPC_SERVER, and other values are refused naming the variable", () => {
    expect(readServerConfig(50051, {}).grpcServer).toBe("grpc-js");
    expect(readServerConfig(50051, { GRPC_SERVER: "connect-node" }).grpcServer).toBe("connect-node");
    expect(() => readServerConfig(50051, { GRPC_SERVER: "netty" })).toThrow(/GRPC_SERVER/);
  });

  it("answers grpc-js and connect-node clients through the services' interceptors, and health outside them", async () => {
    intercepted.length = 0;
    expect((await client("grpc-js").echo({ message: "from grpc-js" })).message).toBe("from grpc-js");
    expect((await client("connect-node").echo({ message: "from connect-node" })).message).toBe("from connect-node");
    const health = createClient(Health, transports[0]!);
    expect((await health.check({})).status).toBe(ServingStatus.SERVING);
    expect(intercepted).toEqual(["Echo", "Echo"]);
  });

  it("sends at most 1,000 characters of a status message, and the connection goes on", async () => {
    for (const kind of ["grpc-js", "connect-node"] as const) {
      const echoes = client(kind);
      const failed = asConnectError((await settle(echoes.echo({ message: `fail:${"x".repeat(200_000)}` }))).error);
      expect(failed.code).toBe(Code.InvalidArgument);
      // grpc-js leaves connect-node's percent-encoding of ":", " " and "(" in place.
      const message = kind === "grpc-js" ? decodeURIComponent(failed.rawMessage) : failed.rawMessage;
      expect(message).toMatch(/^fail:x{995}… \(199005 more characters\)$/);
      expect((await echoes.echo({ message: "after" })).message).toBe("after");
    }
  });

  it("shares admission control: with the only slot taken and no queue, a call is refused with RESOURCE_EXHAUSTED and health still answers", async () => {
    const grpcJs = client("grpc-js");
    const blocking = settle(grpcJs.echo({ message: "block-admission" }));
    await vi.waitFor(() => expect(blocked.has("block-admission")).toBe(true), { timeout: 5_000 });
    // connect-node percent-encodes grpc-message more than gRPC asks (":" and "," too), which grpc-js does not
    // decode; its own client reads it back.
    const refused = asConnectError((await settle(client("connect-node").echo({ message: "refused" }))).error);
    expect(refused.code).toBe(Code.ResourceExhausted);
    expect(refused.rawMessage).toBe("server overloaded: 1 calls in progress, 0 waiting");
    expect((await createClient(Health, transports[0]!).check({})).status).toBe(ServingStatus.SERVING);
    blocked.get("block-admission")!();
    blocked.delete("block-admission");
    expect((await blocking).value?.message).toBe("block-admission");
  });

  it("drains on stop: a call in flight is answered, and the port then refuses connections", async () => {
    const grpcJs = client("grpc-js");
    const inFlight = settle(grpcJs.echo({ message: "block-drain" }));
    await vi.waitFor(() => expect(blocked.has("block-drain")).toBe(true), { timeout: 5_000 });
    const stopped = server.stop();
    blocked.get("block-drain")!();
    blocked.delete("block-drain");
    expect((await inFlight).value?.message).toBe("block-drain");
    await stopped;
    const after = asConnectError((await settle(client("grpc-js").echo({ message: "after" }))).error);
    expect(after.code).toBe(Code.Unavailable);
  });
});
