// Client-streaming and bidi calls through both SDK transport kinds, against a
// real gRPC server on a loopback socket: connect-node's HTTP/2 server hosting
// a small grpc.testing.TestService. Every case must give the same answer
// through `grpc-js` and `connect-node`, since the kinds are interchangeable.
import { once } from "node:events";
import { createServer, type Http2Server, type ServerHttp2Session } from "node:http2";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, type ConnectRouter, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createClient, createTransport, type GrpcTransport, type TransportKind } from "@shopmesh/sdk";
import type { StreamingInputCallRequest, StreamingOutputCallRequest } from "../../gen/grpc/testing/messages_pb.js";
import { TestService } from "../../gen/grpc/testing/test_pb.js";
import { failure } from "../../test/support/failure.js";

/** What the server saw, per call id (the `x-call-id` request header). */
interface ServerSide {
  consumed: number;
  cancelled: boolean;
  /** The deadline the call arrived with (grpc-timeout), in ms from its start. */
  timeoutMs: number | undefined;
}
const calls = new Map<string, ServerSide>();
function serverSide(id: string | null): ServerSide {
  const key = id ?? "";
  let side = calls.get(key);
  if (!side) {
    side = { consumed: 0, cancelled: false, timeoutMs: undefined };
    calls.set(key, side);
  }
  return side;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

const service: Partial<ServiceImpl<typeof TestService>> = {
  async streamingInputCall(requests, context) {
    const side = serverSide(context.requestHeader.get("x-call-id"));
    side.timeoutMs = context.timeoutMs();
    context.signal.addEventListener("abort", () => (side.cancelled = true));
    context.responseHeader.set("x-echo-header", context.requestHeader.get("x-echo") ?? "");
    let size = 0;
    for await (const request of requests) {
      size += request.payload?.body.length ?? 0;
      side.consumed++;
      // A slow reader, so that a client that ignores flow control runs ahead.
      if (context.requestHeader.has("x-slow")) await nextTurn();
    }
    context.responseTrailer.set("x-echo-trailer", context.requestHeader.get("x-echo") ?? "");
    return { aggregatedPayloadSize: size };
  },
  async *fullDuplexCall(requests, context) {
    const side = serverSide(context.requestHeader.get("x-call-id"));
    side.timeoutMs = context.timeoutMs();
    context.signal.addEventListener("abort", () => (side.cancelled = true));
    context.responseHeader.set("x-echo-header", context.requestHeader.get("x-echo") ?? "");
    for await (const request of requests) {
      side.consumed++;
      const status = request.responseStatus;
      if (status && status.code !== 0) {
        throw new ConnectError(status.message, status.code as Code, { "x-failure-detail": "from the handler" });
      }
      for (const parameters of request.responseParameters) {
        yield { payload: { body: new Uint8Array(parameters.size) } };
      }
    }
    context.responseTrailer.set("x-echo-trailer", context.requestHeader.get("x-echo") ?? "");
  },
};

let server: Http2Server;
let target: string;
const sessions = new Set<ServerHttp2Session>();
const transports: GrpcTransport[] = [];

beforeAll(async () => {
  server = createServer(
    connectNodeAdapter({ routes: (router: ConnectRouter) => router.service(TestService, service) }),
  );
  server.on("session", (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  target = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const transport of transports) transport.close();
  for (const session of sessions) session.destroy();
  if (server) await new Promise((resolve) => server.close(resolve));
});

function testService(kind: TransportKind, interceptors?: Interceptor[]) {
  const transport = createTransport({ target, kind, interceptors });
  transports.push(transport);
  return createClient(TestService, transport);
}

let callCounter = 0;
function newCallId(): string {
  return `call-${++callCounter}`;
}

async function* inputs(sizes: number[]): AsyncGenerator<StreamingInputCallRequest> {
  for (const size of sizes) yield { payload: { body: new Uint8Array(size) } } as StreamingInputCallRequest;
}

async function* each<T>(messages: T[]): AsyncGenerator<T> {
  yield* messages;
}

/**
 * Requests that the test writes one at a time, for conversations where each
 * request depends on the last response. `close` ends the request stream.
 */
function requestQueue<T>() {
  const queued: T[] = [];
  let closed = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  return {
    push(message: T) {
      queued.push(message);
      notify();
    },
    close() {
      closed = true;
      notify();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const next = queued.shift();
        if (next !== undefined) yield next;
        else if (closed) return;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}

/** A request stream that sends `first` and then waits forever (until the call ends). */
async function* oneThenSilence<T>(first: T): AsyncGenerator<T> {
  yield first;
  await new Promise<never>(() => {});
}

const kinds: TransportKind[] = ["grpc-js", "connect-node"];

describe.each(kinds)("through the %s transport", (kind) => {
  it("client streaming sums the request payloads and carries headers and trailers both ways", async () => {
    let header: Headers | undefined;
    let trailer: Headers | undefined;
    const response = await testService(kind).streamingInputCall(inputs([27182, 8, 1828, 45904]), {
      headers: { "x-echo": "hello" },
      onHeader: (value) => (header = value),
      onTrailer: (value) => (trailer = value),
    });
    expect(response.aggregatedPayloadSize).toBe(74922);
    expect(header?.get("x-echo-header")).toBe("hello");
    expect(trailer?.get("x-echo-trailer")).toBe("hello");
  });

  it("client streaming with no request at all answers zero", async () => {
    const response = await testService(kind).streamingInputCall(inputs([]));
    expect(response.aggregatedPayloadSize).toBe(0);
  });

  it("bidi plays ping-pong: each response comes before the next request is written", async () => {
    const requests = requestQueue<StreamingOutputCallRequest>();
    const sizes = [31415, 9, 2653, 58979];
    const received: number[] = [];
    let trailer: Headers | undefined;
    const responses = testService(kind).fullDuplexCall(requests, {
      headers: { "x-echo": "pong" },
      onTrailer: (value) => (trailer = value),
    });
    const iterator = responses[Symbol.asyncIterator]();
    for (const size of sizes) {
      requests.push({ responseParameters: [{ size }], payload: { body: new Uint8Array(size) } } as never);
      const next = await iterator.next();
      expect(next.done).toBe(false);
      received.push(next.done ? -1 : (next.value.payload?.body.length ?? -1));
    }
    requests.close();
    expect((await iterator.next()).done).toBe(true);
    expect(received).toEqual(sizes);
    expect(trailer?.get("x-echo-trailer")).toBe("pong");
  });

  it("bidi with an empty request stream ends with no response", async () => {
    const received: unknown[] = [];
    for await (const response of testService(kind).fullDuplexCall(inputs([]) as never)) received.push(response);
    expect(received).toEqual([]);
  });

  it("runs interceptors around streaming calls, which see the request and the response headers", async () => {
    const seen: string[] = [];
    const tagging: Interceptor = (next) => async (req) => {
      req.header.set("x-echo", "from-interceptor");
      const res = await next(req);
      seen.push(`${req.stream}:${res.header.get("x-echo-header")}`);
      return res;
    };
    const response = await testService(kind, [tagging]).streamingInputCall(inputs([3, 4]));
    expect(response.aggregatedPayloadSize).toBe(7);
    expect(seen).toEqual(["true:from-interceptor"]);
  });

  it("a deadline that passes mid-stream fails the call with DEADLINE_EXCEEDED, both kinds of stream", async () => {
    const client = testService(kind);
    const uploadId = newCallId();
    const upload = await failure(
      client.streamingInputCall(oneThenSilence({ payload: { body: new Uint8Array(10) } }), {
        timeoutMs: 300,
        headers: { "x-call-id": uploadId },
      }),
    );
    expect(upload.code).toBe(Code.DeadlineExceeded);

    const duplexId = newCallId();
    let responses = 0;
    const duplex = await failure(
      (async () => {
        const requests = oneThenSilence({ responseParameters: [{ size: 5 }] } as StreamingOutputCallRequest);
        const options = { timeoutMs: 300, headers: { "x-call-id": duplexId } };
        for await (const _ of client.fullDuplexCall(requests, options)) responses++;
      })(),
    );
    expect([duplex.code, responses]).toEqual([Code.DeadlineExceeded, 1]);
    // The deadline travelled to the server with the call, not only as a local timer.
    for (const id of [uploadId, duplexId]) {
      expect(serverSide(id).timeoutMs).toBeGreaterThan(0);
      expect(serverSide(id).timeoutMs).toBeLessThanOrEqual(300);
    }
  });

  it("an aborted signal cancels the call mid-stream, and the server sees the cancellation", async () => {
    const client = testService(kind);
    const id = newCallId();
    const controller = new AbortController();
    // One request asks for one response; the call is aborted when it comes,
    // with the request stream still open.
    const requests = requestQueue<StreamingOutputCallRequest>();
    requests.push({ responseParameters: [{ size: 4 }] } as never);
    let responses = 0;
    const error = await failure(
      (async () => {
        const options = { signal: controller.signal, headers: { "x-call-id": id } };
        for await (const _ of client.fullDuplexCall(requests, options)) {
          responses++;
          controller.abort();
        }
      })(),
    );
    requests.close();
    expect(responses).toBe(1);
    expect(error.code).toBe(Code.Canceled);
    await expect.poll(() => serverSide(id).cancelled).toBe(true);

    const uploadId = newCallId();
    const uploadController = new AbortController();
    const upload = client.streamingInputCall(oneThenSilence({ payload: { body: new Uint8Array(1) } }), {
      signal: uploadController.signal,
      headers: { "x-call-id": uploadId },
    });
    await expect.poll(() => serverSide(uploadId).consumed).toBe(1);
    uploadController.abort();
    expect((await failure(upload)).code).toBe(Code.Canceled);
    await expect.poll(() => serverSide(uploadId).cancelled).toBe(true);
  });

  it("leaving a bidi stream early cancels the call", async () => {
    const id = newCallId();
    const requests = requestQueue<StreamingOutputCallRequest>();
    requests.push({ responseParameters: [{ size: 1 }, { size: 2 }] } as never);
    for await (const response of testService(kind).fullDuplexCall(requests, { headers: { "x-call-id": id } })) {
      expect(response.payload?.body.length).toBe(1);
      break;
    }
    await expect.poll(() => serverSide(id).cancelled).toBe(true);
  });

  it("a server error keeps its code, message and trailers", async () => {
    const requests = each([
      { responseParameters: [{ size: 3 }] },
      { responseStatus: { code: Code.FailedPrecondition, message: "not now\twith a tab ☺" } },
    ] as StreamingOutputCallRequest[]);
    let responses = 0;
    const error = await failure(
      (async () => {
        for await (const _ of testService(kind).fullDuplexCall(requests)) responses++;
      })(),
    );
    expect([error.code, error.rawMessage, responses]).toEqual([Code.FailedPrecondition, "not now\twith a tab ☺", 1]);
    expect(error.metadata.get("x-failure-detail")).toBe("from the handler");
  });

  it("a request stream that fails ends the call with its error", async () => {
    async function* broken(): AsyncGenerator<StreamingInputCallRequest> {
      yield { payload: { body: new Uint8Array(2) } } as StreamingInputCallRequest;
      throw new ConnectError("the producer gave up", Code.Aborted);
    }
    const error = await failure(testService(kind).streamingInputCall(broken()));
    expect(error.code).toBe(Code.Aborted);
  });

  it("holds a fast producer back while a slow server reads: many messages, a bounded number in flight", async () => {
    const id = newCallId();
    const count = 1000;
    const size = 16 * 1024;
    const side = serverSide(id);
    let produced = 0;
    let mostAhead = 0;
    async function* fast(): AsyncGenerator<StreamingInputCallRequest> {
      const body = new Uint8Array(size);
      for (let i = 0; i < count; i++) {
        mostAhead = Math.max(mostAhead, produced - side.consumed);
        produced++;
        yield { payload: { body } } as StreamingInputCallRequest;
      }
    }
    const response = await testService(kind).streamingInputCall(fast(), {
      headers: { "x-call-id": id, "x-slow": "1" },
      timeoutMs: 25_000,
    });
    expect(response.aggregatedPayloadSize).toBe(count * size);
    // In flight: the HTTP/2 windows and the streams' buffers, a few dozen
    // messages. A writer that ignored write()'s answer would queue all 1000
    // before the server read the first.
    expect(mostAhead).toBeLessThan(200);
  });
});
