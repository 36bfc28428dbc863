// Bidi-streaming calls hosted by the chassis (bidi-streaming-handler.ts):
// requests and answers interleaved, with the deadline, cancellation,
// metadata, status and interceptor semantics of the other kinds, and writes
// held back while the client does not read. Real gRPC over loopback; the
// client is the SDK's connect-node transport (its grpc-js one for the
// deadline, a raw grpc-js client for flow control, where the test must stop
// reading at a known point).
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client as GrpcClient, credentials, type ClientDuplexStream } from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { methodPath } from "@shopmesh/sdk/internal";
import {
  StreamingOutputCallRequestSchema,
  StreamingOutputCallResponseSchema,
  type StreamingOutputCallRequest,
  type StreamingOutputCallResponse,
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

/** A request for one answer per size. */
const request = (...sizes: number[]): StreamingOutputCallRequest =>
  create(StreamingOutputCallRequestSchema, { responseParameters: sizes.map((size) => ({ size })) });

describe("a bidi call", () => {
  it("answers each request as it comes (ping-pong), with response header and trailer", async () => {
    // The server may record the call's end after the client has its last answer: awaited here, so that a later
    // test's wait for an end is not given this one.
    const ended = once(server.events, "end");
    const input = pushable<StreamingOutputCallRequest>();
    let header: Headers | undefined;
    let trailer: Headers | undefined;
    const responses = client.fullDuplexCall(input, {
      onHeader: (h) => (header = h),
      onTrailer: (t) => (trailer = t),
    });
    const iterator = responses[Symbol.asyncIterator]();
    const sizes = [31_415, 9, 2_653, 58_979];
    for (const size of sizes) {
      // The next request is sent only after the answer to the last one arrived: the server cannot be reading ahead.
      input.push(request(size));
      const next = await iterator.next();
      expect(next.done).toBe(false);
      expect((next.value as StreamingOutputCallResponse).payload?.body.length).toBe(size);
    }
    input.close();
    expect((await iterator.next()).done).toBe(true);
    expect(header?.get("x-kind")).toBe("bidi");
    expect(trailer?.get("x-kind-trailer")).toBe("bidi");
    await ended;
  });

  it("ends with OK and no answers when the client sends nothing", async () => {
    const ended = once(server.events, "end");
    const received: unknown[] = [];
    for await (const response of client.fullDuplexCall(pushableClosed())) received.push(response);
    expect(received).toEqual([]);
    await ended;
  });

  it("answers a half-duplex call after the requests end, in order", async () => {
    const sizes: number[] = [];
    for await (const response of client.halfDuplexCall(fromArray([request(3, 1), request(4)]))) {
      sizes.push(response.payload?.body.length ?? -1);
    }
    expect(sizes).toEqual([3, 1, 4]);
  });

  it("expires at its deadline: DEADLINE_EXCEEDED for the client after the answers sent in time, and for the handler", async () => {
    const input = pushable<StreamingOutputCallRequest>();
    input.push(request(1));
    const ended = once(server.events, "end") as Promise<[HandlerEnd]>;
    const received: number[] = [];
    // grpc-js resets the stream when its deadline passes; connect-node's client ends the request
    // stream as well, which a loaded server can see well before the reset (see the client-streaming test).
    const grpcJs = createTransport({ target: server.server.address });
    const code = await consume(createClient(TestService, grpcJs).fullDuplexCall(input, { timeoutMs: 300 }), received);
    grpcJs.close();
    expect(code).toBe(Code.DeadlineExceeded);
    expect(received).toEqual([1]);
    const [end] = await ended;
    input.close();
    expect(end).toEqual({
      method: "FullDuplexCall",
      outcome: Code.DeadlineExceeded,
      signalReason: Code.DeadlineExceeded,
    });
  });

  it("cancelled by the client after the first answer: the handler's next read fails with CANCELED", async () => {
    const input = pushable<StreamingOutputCallRequest>();
    input.push(request(1));
    const controller = new AbortController();
    const ended = once(server.events, "end") as Promise<[HandlerEnd]>;
    const received: number[] = [];
    const code = await consume(client.fullDuplexCall(input, { signal: controller.signal }), received, () =>
      controller.abort(),
    );
    expect(code).toBe(Code.Canceled);
    expect(received).toEqual([1]);
    const [end] = await ended;
    input.close();
    expect(end).toEqual({ method: "FullDuplexCall", outcome: Code.Canceled, signalReason: Code.Canceled });
  });

  it("ends with the status the handler threw, after the answers before it, with the trailer it set", async () => {
    const received: number[] = [];
    const failing = create(StreamingOutputCallRequestSchema, {
      responseStatus: { code: Code.FailedPrecondition, message: "the second request fails" },
    });
    let error: ConnectError | undefined;
    try {
      for await (const response of client.fullDuplexCall(fromArray([request(7), failing, request(8)]))) {
        received.push(response.payload?.body.length ?? -1);
      }
    } catch (caught) {
      error = ConnectError.from(caught);
    }
    expect(received).toEqual([7]);
    expect(error?.code).toBe(Code.FailedPrecondition);
    expect(error?.rawMessage).toBe("the second request fails");
    expect(error?.metadata.get("x-failed")).toBe("on purpose");
  });

  it("passes the interceptors first: one that refuses ends the call before the handler runs", async () => {
    const before = server.ends.length;
    const seen = server.intercepted.length;
    const code = await consume(client.fullDuplexCall(fromArray([request(1)]), { headers: { "x-deny": "1" } }), []);
    expect(code).toBe(Code.PermissionDenied);
    expect(server.intercepted.slice(seen)).toEqual([{ method: "FullDuplexCall", stream: true }]);
    expect(server.ends.length).toBe(before);
  });

  it("holds its writes back while the client does not read, then delivers every answer in order", async () => {
    const total = 2_000;
    const size = 1_000;
    const windowBytes = 65_535;
    const grpc = new GrpcClient(server.server.address, credentials.createInsecure(), {
      "grpc-node.flow_control_window": windowBytes,
    });
    const method = TestService.method.fullDuplexCall;
    const call: ClientDuplexStream<StreamingOutputCallRequest, StreamingOutputCallResponse> =
      grpc.makeBidiStreamRequest(
        methodPath(method),
        (value: StreamingOutputCallRequest) => Buffer.from(toBinary(StreamingOutputCallRequestSchema, value)),
        (bytes: Buffer) => fromBinary(StreamingOutputCallResponseSchema, bytes),
      );
    try {
      const producedBefore = server.produced();
      const received: number[] = [];
      let wanted = 1;
      let reached: (() => void) | undefined;
      call.on("data", (message: StreamingOutputCallResponse) => {
        received.push(message.payload?.body.length ?? -1);
        // grpc-js's client reads a call nobody reads from into memory unbounded; it stops only once paused.
        if (received.length === 1) call.pause();
        if (received.length >= wanted) reached?.();
      });
      const until = (count: number) =>
        new Promise<void>((resolve, reject) => {
          wanted = count;
          reached = resolve;
          call.once("error", reject);
          if (received.length >= count) resolve();
        });
      call.write(request(...Array.from({ length: total }, () => size)));
      call.end();
      await until(1);
      const produced = (await settled(() => server.produced())) - producedBefore;
      // What may be past the handler but not read: grpc-js's writable buffer (16) and the message HTTP/2 holds,
      // two stream windows of messages on the wire and in the client's socket buffers, and the client's
      // readable buffer (16). A host that ignored backpressure would produce all of them.
      const wireBytes = size + 8;
      const bound = 16 + 1 + 2 * Math.ceil(windowBytes / wireBytes) + 16 + 1;
      expect(bound).toBeLessThan(total / 5);
      expect(produced).toBeLessThanOrEqual(bound);
      const all = until(total);
      call.resume();
      await all;
      expect(received).toEqual(Array.from({ length: total }, () => size));
    } finally {
      call.cancel();
      grpc.close();
    }
  });
});

function pushableClosed() {
  const input = pushable<StreamingOutputCallRequest>();
  input.close();
  return input;
}

async function* fromArray<T>(values: T[]) {
  yield* values;
}

/** Reads a call's answers into `sizes`, calls `afterFirst` after the first, and returns how it ended. */
async function consume(
  responses: AsyncIterable<StreamingOutputCallResponse>,
  sizes: number[],
  afterFirst?: () => void,
): Promise<Code | "ok"> {
  try {
    for await (const response of responses) {
      sizes.push(response.payload?.body.length ?? -1);
      if (sizes.length === 1) afterFirst?.();
    }
    return "ok";
  } catch (error) {
    return ConnectError.from(error).code;
  }
}

/**
 * The value once it has not changed for 300 ms. What is shown here is the
 * absence of progress, which only an interval can show; a host that kept
 * writing would keep changing it (up to the total) and be caught by the
 * bound.
 */
async function settled(read: () => number): Promise<number> {
  const deadline = Date.now() + 10_000;
  let last = -1;
  let stableSince = Date.now();
  while (Date.now() < deadline) {
    const now = read();
    if (now !== last) {
      last = now;
      stableSince = Date.now();
    } else if (Date.now() - stableSince >= 300) {
      return now;
    }
    await sleep(20);
  }
  throw new Error(`the handler never stopped producing: ${read()}`);
}
