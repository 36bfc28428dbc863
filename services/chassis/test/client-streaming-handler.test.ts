// Client-streaming calls hosted by the chassis (client-streaming-handler.ts):
// a stream of requests in, one answer out, with the deadline, cancellation,
// metadata and interceptor semantics of a unary call. Real gRPC over
// loopback; the client is the SDK's connect-node transport (its grpc-js one for the deadline).
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client as GrpcClient, credentials, status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { methodPath } from "@shopmesh/sdk/internal";
import {
  StreamingInputCallRequestSchema,
  type StreamingInputCallRequest,
} from "../../../gen/grpc/testing/messages_pb.js";
import { TestService } from "../../../gen/grpc/testing/test_pb.js";
import { pushable } from "./support/pushable.js";
import { startStreamingServer, type HandlerEnd, type StreamingServer } from "./support/streaming-server.js";

let server: StreamingServer;
let transport: GrpcTransport;
let client: Client<typeof TestService>;

beforeAll(async () => {
  server = await startStreamingServer();
  transport = createTransport({ target: server.server.address, kind: "connect-node" });
  client = createClient(TestService, transport);
});

afterAll(async () => {
  transport?.close();
  await server?.server.stop();
});

const request = (bytes: number): StreamingInputCallRequest =>
  create(StreamingInputCallRequestSchema, { payload: { body: new Uint8Array(bytes) } });

async function* requests(...sizes: number[]) {
  for (const size of sizes) yield request(size);
}

async function codeOf(call: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await call;
    return "ok";
  } catch (error) {
    return ConnectError.from(error).code;
  }
}

describe("a client-streaming call", () => {
  it("reads every request and answers once, with the handler's response header and trailer", async () => {
    let header: Headers | undefined;
    let trailer: Headers | undefined;
    // The server may record the call's end after the client has its answer: awaited here, so that a later
    // test's wait for an end is not given this one.
    const ended = once(server.events, "end");
    const response = await client.streamingInputCall(requests(10, 200, 3_000, 0), {
      onHeader: (h) => (header = h),
      onTrailer: (t) => (trailer = t),
    });
    expect(response.aggregatedPayloadSize).toBe(3_210);
    expect(header?.get("x-kind")).toBe("client-streaming");
    expect(trailer?.get("x-total")).toBe("3210");
    await ended;
  });

  it("answers a stream with no requests at all", async () => {
    const ended = once(server.events, "end");
    const response = await client.streamingInputCall(requests());
    expect(response.aggregatedPayloadSize).toBe(0);
    await ended;
  });

  it("expires at its deadline: DEADLINE_EXCEEDED for the client, and the handler's next read fails with it", async () => {
    const input = pushable<StreamingInputCallRequest>();
    input.push(request(5));
    const ended = once(server.events, "end") as Promise<[HandlerEnd]>;
    const started = performance.now();
    // grpc-js resets the stream when its deadline passes. connect-node's client ends the request
    // stream as well, and on a loaded machine the server can see that end well before the reset:
    // a complete request stream, legitimately answered.
    const grpcJs = createTransport({ target: server.server.address });
    const code = await codeOf(createClient(TestService, grpcJs).streamingInputCall(input, { timeoutMs: 300 }));
    grpcJs.close();
    expect(code).toBe(Code.DeadlineExceeded);
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    // Closed only now: a request stream completed before the server's copy of the deadline passed is complete.
    const [end] = await ended;
    input.close();
    expect(end).toEqual({
      method: "StreamingInputCall",
      outcome: Code.DeadlineExceeded,
      signalReason: Code.DeadlineExceeded,
    });
  });

  it("cancelled by the client: the handler's next read fails with CANCELED", async () => {
    const input = pushable<StreamingInputCallRequest>();
    input.push(request(5));
    const controller = new AbortController();
    const ended = once(server.events, "end") as Promise<[HandlerEnd]>;
    const call = codeOf(client.streamingInputCall(input, { signal: controller.signal, timeoutMs: 20_000 }));
    await once(server.events, "message");
    controller.abort();
    expect(await call).toBe(Code.Canceled);
    const [end] = await ended;
    input.close();
    expect(end).toEqual({ method: "StreamingInputCall", outcome: Code.Canceled, signalReason: Code.Canceled });
  });

  it("passes the interceptors first: one that refuses ends the call before the handler runs", async () => {
    const before = server.ends.length;
    const seen = server.intercepted.length;
    const code = await codeOf(client.streamingInputCall(requests(1, 2), { headers: { "x-deny": "1" } }));
    expect(code).toBe(Code.PermissionDenied);
    expect(server.intercepted.slice(seen)).toEqual([{ method: "StreamingInputCall", stream: true }]);
    expect(server.ends.length).toBe(before);
  });

  it("answers a request message that cannot be decoded with INVALID_ARGUMENT naming the type, never INTERNAL", async () => {
    const raw = new GrpcClient(server.server.address, credentials.createInsecure());
    try {
      const same = (bytes: Buffer) => bytes;
      const ended = await new Promise<{ code: GrpcStatus; details: string }>((resolve) => {
        const call = raw.makeClientStreamRequest(
          methodPath(TestService.method.streamingInputCall),
          same,
          same,
          { deadline: Date.now() + 10_000 },
          (error: ServiceError | null) =>
            resolve(error ? { code: error.code, details: error.details } : { code: GrpcStatus.OK, details: "" }),
        );
        call.write(Buffer.from(toBinary(StreamingInputCallRequestSchema, request(3))));
        call.write(Buffer.from([0xff, 0xfe, 0x01, 0x99]));
        call.end();
      });
      expect(ended.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(ended.details).toContain("cannot decode grpc.testing.StreamingInputCallRequest");
    } finally {
      raw.close();
    }
  });
});

describe("a client-streaming call still open when its server's shutdown grace period is over", () => {
  it("is answered UNAVAILABLE by the server (which a client may retry elsewhere), not reset", async () => {
    const stopping = await startStreamingServer({ shutdownGraceMs: 300 });
    const stoppingTransport = createTransport({ target: stopping.server.address, kind: "connect-node" });
    const input = pushable<StreamingInputCallRequest>();
    input.push(request(1));
    try {
      const call = createClient(TestService, stoppingTransport).streamingInputCall(input, { timeoutMs: 20_000 });
      const outcome = call.then(
        () => undefined,
        (error: unknown) => ConnectError.from(error),
      );
      await once(stopping.events, "message");
      await stopping.server.stop();
      const error = await outcome;
      expect(error?.code).toBe(Code.Unavailable);
      expect(error?.rawMessage).toContain("did not finish within its grace period");
    } finally {
      input.close();
      stoppingTransport.close();
      await stopping.server.stop();
    }
  });
});
