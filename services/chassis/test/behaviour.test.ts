// The chassis's behaviour seen from a client: one suite, run against a real
// grpc-js server on loopback (startServer, port 0) over both client transports
// the SDK offers.
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { decodeBinaryHeader, encodeBinaryHeader } from "@connectrpc/connect";
// The SDK's createClient, as applications use it: whatever it adds over
// Connect's (e.g. cancelling a stream the caller stops reading) is tested here.
import {
  Code,
  ConnectError,
  createClient,
  createTransport,
  maxSentTimeoutMs,
  type Client,
  type GrpcTransport,
  type Interceptor,
  type TransportKind,
} from "@shopmesh/sdk";
import { EchoService } from "../../../gen/shopmesh/echo/v1/echo_pb.js";
import { deadlineSlackMs } from "../src/server/call-context.js";
import { asConnectError, settle } from "./support/call-outcome.js";
import { startEchoServer, type LoopbackEchoServer } from "./support/loopback-server.js";

const kinds: TransportKind[] = ["grpc-js", "connect-node"];

let uniqueCounter = 0;
/**
 * What a handler waiting for its abort sees when the deadline passes:
 * DEADLINE_EXCEEDED, unless the request reached the server later than the
 * slack the server allows (a fifth of the time it had left, 25 ms at
 * least). Then the client's cancellation may come first, and from the
 * server's side it is one (see the twenty-call test below). `lateMs`: how
 * far the server's deadline is after the client's; `serverTimeoutMs`: the
 * time the handler found left.
 */
function handlerAbortCode(lateMs: number, serverTimeoutMs: number) {
  return lateMs <= deadlineSlackMs(serverTimeoutMs) - 5
    ? Code.DeadlineExceeded
    : expect.toBeOneOf([Code.DeadlineExceeded, Code.Canceled]);
}

/** A message that identifies one call among the server's observations. */
function unique(label: string): string {
  return `${label}-${++uniqueCounter}-${Math.random().toString(36).slice(2, 8)}`;
}

describe.each(kinds)("chassis over the %s transport", (kind) => {
  let echo: LoopbackEchoServer;
  let transport: GrpcTransport;
  let client: Client<typeof EchoService>;
  /** Server interceptor trace: `<interceptor>:<phase>:<x-trace>`. */
  const serverTrace: string[] = [];
  const extraTransports: GrpcTransport[] = [];

  const recordingServerInterceptor =
    (name: string): Interceptor =>
    (next) =>
    async (req) => {
      const trace = req.header.get("x-trace");
      if (trace !== null) serverTrace.push(`${name}:before:${trace}`);
      if (name === "second" && req.header.has("x-reject")) {
        throw new ConnectError("rejected by the second interceptor", Code.PermissionDenied);
      }
      const res = await next(req);
      if (trace !== null) {
        serverTrace.push(`${name}:after:${trace}`);
        res.header.append("x-server-interceptors", name);
      }
      return res;
    };

  beforeAll(async () => {
    echo = await startEchoServer({
      interceptors: [recordingServerInterceptor("first"), recordingServerInterceptor("second")],
      maxRequestBytes: 64 * 1024,
    });
    transport = createTransport({ target: echo.server.address, kind });
    client = createClient(EchoService, transport);
  });

  afterEach(() => {
    for (const extra of extraTransports.splice(0)) extra.close();
  });

  afterAll(async () => {
    transport?.close();
    await echo?.server.stop();
  });

  describe("typed calls", () => {
    it("answers a unary call with the generated response type", async () => {
      const message = unique("unary");
      const response = await client.echo({ message });
      expect(response.$typeName).toBe("shopmesh.echo.v1.EchoResponse");
      expect(response.message).toBe(message);
      expect(echo.observed(message).method).toBe("Echo");
    });

    it("streams every message of a server-streaming call, in order", async () => {
      const message = unique("stream");
      const received: { index: number; message: string; type: string }[] = [];
      for await (const response of client.echoStream({ message, count: 25 })) {
        received.push({ index: response.index, message: response.message, type: response.$typeName });
      }
      expect(received.map((r) => r.index)).toEqual([...Array(25).keys()]);
      expect(new Set(received.map((r) => r.message))).toEqual(new Set([message]));
      expect(received[0]?.type).toBe("shopmesh.echo.v1.EchoStreamResponse");
    });

    it("answers calls made concurrently on one transport", async () => {
      const messages = Array.from({ length: 20 }, () => unique("concurrent"));
      const responses = await Promise.all(messages.map((message) => client.echo({ message })));
      expect(responses.map((r) => r.message)).toEqual(messages);
    });
  });

  describe("deadlines", () => {
    it("gives the handler the client's timeout, not more", async () => {
      const message = unique("timeout");
      await client.echo({ message }, { timeoutMs: 5_000 });
      const { timeoutMs } = echo.observed(message);
      expect(timeoutMs).toBeDefined();
      expect(timeoutMs!).toBeLessThanOrEqual(5_000);
      expect(timeoutMs!).toBeGreaterThan(4_000);
    });

    it("sends a timeout of weeks as the longest grpc-timeout carries, and the call is answered", async () => {
      const message = unique("weeks");
      await client.echo({ message }, { timeoutMs: 30 * 24 * 3_600_000 });
      const { timeoutMs } = echo.observed(message);
      expect(timeoutMs!).toBeLessThanOrEqual(maxSentTimeoutMs);
      expect(timeoutMs!).toBeGreaterThan(maxSentTimeoutMs - 60_000);
    });

    it("has no timeout in the handler when the client sets none", async () => {
      const message = unique("no-timeout");
      await client.echo({ message });
      expect(echo.observed(message).timeoutMs).toBeUndefined();
    });

    it("expires with DEADLINE_EXCEEDED on the client and aborts the handler", async () => {
      const message = unique("deadline");
      const clientDeadline = Date.now() + 300;
      const outcome = await settle(client.echo({ message }, { timeoutMs: 300, headers: { "x-wait-for-abort": "1" } }));
      const error = asConnectError(outcome.error);
      expect(error.code).toBe(Code.DeadlineExceeded);
      expect(outcome.elapsedMs).toBeGreaterThanOrEqual(250);
      expect(outcome.elapsedMs).toBeLessThan(1_500);

      await vi.waitFor(() => expect(echo.observed(message).aborted).toBeDefined(), { timeout: 3_000 });
      const observation = echo.observed(message);
      expect(observation.timeoutMs!).toBeLessThanOrEqual(300);
      expect(observation.timeoutMs!).toBeGreaterThan(100);
      expect(observation.aborted?.code).toEqual(
        handlerAbortCode(observation.deadlineAt! - clientDeadline, observation.timeoutMs!),
      );
      expect(observation.aborted!.afterMs).toBeGreaterThan(100);
      expect(observation.aborted!.afterMs).toBeLessThan(1_500);
    });

    // The client cancels the call at its own deadline, and that cancellation
    // often reaches the server a few milliseconds before the server's copy of
    // the deadline passes; the handler must still see DEADLINE_EXCEEDED, not
    // CANCELED. Measured here, up to a third of calls lose that race. The
    // calls start 10 ms apart so that their timers do not fire in one batch,
    // which would make them one trial rather than twenty.
    //
    // The server's copy starts when it reads the request, and a loaded
    // machine can hold the request back longer than the slack the server
    // allows for (a fifth of the timeout, here 40 ms): such a call's
    // cancellation is, from the server's side, a cancellation. Client and
    // server share this process's clock, so each call's lateness is measured,
    // and the calls that came in time must all see DEADLINE_EXCEEDED.
    it("aborts every expired handler with DEADLINE_EXCEEDED, not CANCELED", async () => {
      const timeoutMs = 200;
      const inTimeMs = 35;
      const messages = Array.from({ length: 20 }, () => unique("deadline-race"));
      const clientDeadlines = new Map<string, number>();
      const outcomes = await Promise.all(
        messages.map(async (message, index) => {
          await sleep(index * 10);
          clientDeadlines.set(message, Date.now() + timeoutMs);
          return settle(client.echo({ message }, { timeoutMs, headers: { "x-wait-for-abort": "1" } }));
        }),
      );
      for (const outcome of outcomes) expect(asConnectError(outcome.error).code).toBe(Code.DeadlineExceeded);
      await vi.waitFor(() => expect(messages.every((message) => echo.observed(message).aborted)).toBe(true), {
        timeout: 3_000,
      });
      const seen = messages.map((message) => {
        const { timeoutMs: serverTimeoutMs, deadlineAt, aborted } = echo.observed(message);
        const lateMs = deadlineAt! - clientDeadlines.get(message)!;
        return {
          inTime: lateMs <= inTimeMs,
          entry: `${Code[aborted!.code!]} after ${aborted!.afterMs.toFixed(1)} of ${serverTimeoutMs} ms, the server's deadline ${lateMs} ms after the client's`,
        };
      });
      const inTime = seen.filter((call) => call.inTime).map((call) => call.entry);
      // Most calls reach the server in time even on a busy machine; fewer would leave too few trials.
      expect(inTime.length, seen.map((call) => call.entry).join("\n")).toBeGreaterThanOrEqual(5);
      expect(inTime.filter((entry) => !entry.startsWith("DeadlineExceeded"))).toEqual([]);
    });

    it("expires a server stream with DEADLINE_EXCEEDED after the messages sent in time", async () => {
      const message = unique("stream-deadline");
      const clientDeadline = Date.now() + 300;
      const received: number[] = [];
      const outcome = await settle(
        (async () => {
          for await (const response of client.echoStream(
            { message, count: 2 },
            { timeoutMs: 300, headers: { "x-wait-for-abort": "1" } },
          )) {
            received.push(response.index);
          }
        })(),
      );
      expect(received).toEqual([0, 1]);
      expect(asConnectError(outcome.error).code).toBe(Code.DeadlineExceeded);
      expect(outcome.elapsedMs).toBeGreaterThanOrEqual(250);
      expect(outcome.elapsedMs).toBeLessThan(1_500);
      await vi.waitFor(() => expect(echo.observed(message).aborted).toBeDefined(), { timeout: 3_000 });
      const observation = echo.observed(message);
      expect(observation.aborted?.code).toEqual(
        handlerAbortCode(observation.deadlineAt! - clientDeadline, observation.timeoutMs!),
      );
    });
  });

  describe("cancellation", () => {
    it("aborts the handler with CANCELED when the client aborts a unary call", async () => {
      const message = unique("cancel");
      const controller = new AbortController();
      const outcome = settle(
        client.echo({ message }, { signal: controller.signal, headers: { "x-wait-for-abort": "1" } }),
      );
      await vi.waitFor(() => echo.observed(message), { timeout: 3_000 });
      controller.abort();
      const error = asConnectError((await outcome).error);
      expect(error.code).toBe(Code.Canceled);
      await vi.waitFor(() => expect(echo.observed(message).aborted?.code).toBe(Code.Canceled), { timeout: 3_000 });
    });

    it("aborts the handler with CANCELED when the client aborts a server stream", async () => {
      const message = unique("cancel-stream");
      const controller = new AbortController();
      const received: number[] = [];
      const outcome = settle(
        (async () => {
          for await (const response of client.echoStream(
            { message, count: 2 },
            { signal: controller.signal, headers: { "x-wait-for-abort": "1" } },
          )) {
            received.push(response.index);
            if (received.length === 2) controller.abort();
          }
        })(),
      );
      expect(asConnectError((await outcome).error).code).toBe(Code.Canceled);
      expect(received).toEqual([0, 1]);
      await vi.waitFor(() => expect(echo.observed(message).aborted?.code).toBe(Code.Canceled), { timeout: 3_000 });
    });

    // Fails with @connectrpc/connect's createClient (re-exported by the SDK):
    // its server-streaming iterable deliberately has no return(), so `break`
    // never reaches the transport and the server stream stays open until the
    // server stops. See the report for the SDK createClient that fixes it.
    it("cancels the server stream when the client breaks out of the loop early", async () => {
      const message = unique("break");
      const received: number[] = [];
      for await (const response of client.echoStream({ message, count: 3 }, { headers: { "x-wait-for-abort": "1" } })) {
        received.push(response.index);
        if (received.length === 2) break;
      }
      expect(received).toEqual([0, 1]);
      await vi.waitFor(() => expect(echo.observed(message).aborted?.code).toBe(Code.Canceled), { timeout: 3_000 });
    });
  });

  describe("status codes", () => {
    const codes = Array.from({ length: 16 }, (_, index) => index + 1) as Code[];

    it.each(codes)("carries status code %i and its message to the client", async (code) => {
      // The handler fails with the request's message as its error message, so
      // that the text can hold what a header value cannot.
      const text = `${unique(`code ${code} (${Code[code]})`)}: Bestellung für Zoë ungültig ✓ 100% "quoted"\ttab, newline\nend`;
      const outcome = await settle(
        client.echo(
          { message: text },
          { headers: { "x-fail-code": String(code), "x-fail-with-request-message": "1" } },
        ),
      );
      const error = asConnectError(outcome.error);
      expect(error.code).toBe(code);
      expect(error.rawMessage).toBe(text);
    });

    it("carries a message given as a header value unchanged", async () => {
      const outcome = await settle(
        client.echo(
          { message: unique("header-message") },
          {
            headers: {
              "x-fail-code": String(Code.InvalidArgument),
              "x-fail-message": "quantity must be > 0 (got -1); 100% sure",
            },
          },
        ),
      );
      const error = asConnectError(outcome.error);
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toBe("quantity must be > 0 (got -1); 100% sure");
    });

    it("turns a plain Error into INTERNAL with a generic message", async () => {
      const outcome = await settle(client.echo({ message: unique("throw") }, { headers: { "x-throw": "1" } }));
      const error = asConnectError(outcome.error);
      expect(error.code).toBe(Code.Internal);
      expect(error.rawMessage).not.toContain("hunter2");
      expect(error.rawMessage).not.toContain("password");
      expect(error.rawMessage.length).toBeGreaterThan(0);
      for (const [, value] of error.metadata) expect(value).not.toContain("hunter2");
    });

    it("fails a stream after the messages it sent, with the handler's code", async () => {
      const message = unique("fail-after");
      const received: number[] = [];
      const outcome = await settle(
        (async () => {
          for await (const response of client.echoStream(
            { message, count: 10 },
            { headers: { "x-fail-after": "3" } },
          )) {
            received.push(response.index);
          }
        })(),
      );
      expect(received).toEqual([0, 1, 2]);
      const error = asConnectError(outcome.error);
      expect(error.code).toBe(Code.Aborted);
      expect(error.rawMessage).toBe("failed after 3 messages");
    });

    it("fails a stream before its first message with the handler's code", async () => {
      const received: number[] = [];
      const outcome = await settle(
        (async () => {
          for await (const response of client.echoStream(
            { message: unique("fail-first"), count: 3 },
            { headers: { "x-fail-code": String(Code.NotFound), "x-fail-message": "no such echo" } },
          )) {
            received.push(response.index);
          }
        })(),
      );
      expect(received).toEqual([]);
      const error = asConnectError(outcome.error);
      expect(error.code).toBe(Code.NotFound);
      expect(error.rawMessage).toBe("no such echo");
    });
  });

  describe("headers and trailers", () => {
    const blob = new Uint8Array([0, 1, 2, 127, 128, 200, 254, 255]);

    it("carries request headers to the handler and response headers and trailers back (unary)", async () => {
      const message = unique("headers");
      let header: Headers | undefined;
      let trailer: Headers | undefined;
      await client.echo(
        { message },
        {
          headers: {
            "x-custom": "custom value",
            "x-echo-colour": "blue",
            "x-trailer-flavour": "salty",
            "x-echo-blob-bin": encodeBinaryHeader(blob),
            "x-trailer-blob-bin": encodeBinaryHeader(blob),
          },
          onHeader: (value) => (header = value),
          onTrailer: (value) => (trailer = value),
        },
      );
      const seen = echo.observed(message).header;
      expect(seen["x-custom"]).toBe("custom value");
      expect(decodeBinaryHeader(seen["x-echo-blob-bin"]!)).toEqual(blob);

      expect(header?.get("x-echo-colour")).toBe("blue");
      expect(header?.has("x-trailer-flavour")).toBe(false);
      expect(decodeBinaryHeader(header!.get("x-echo-blob-bin")!)).toEqual(blob);

      expect(trailer?.get("x-trailer-flavour")).toBe("salty");
      expect(trailer?.has("x-echo-colour")).toBe(false);
      expect(decodeBinaryHeader(trailer!.get("x-trailer-blob-bin")!)).toEqual(blob);
    });

    it("carries response headers and trailers of a server stream", async () => {
      let header: Headers | undefined;
      let trailer: Headers | undefined;
      let count = 0;
      for await (const _ of client.echoStream(
        { message: unique("stream-headers"), count: 2 },
        {
          headers: { "x-echo-colour": "green", "x-trailer-blob-bin": encodeBinaryHeader(blob) },
          onHeader: (value) => (header = value),
          onTrailer: (value) => (trailer = value),
        },
      )) {
        expect(header?.get("x-echo-colour")).toBe("green");
        count++;
      }
      expect(count).toBe(2);
      expect(decodeBinaryHeader(trailer!.get("x-trailer-blob-bin")!)).toEqual(blob);
    });

    it("carries trailers with an error as the error's metadata", async () => {
      const outcome = await settle(
        client.echo(
          { message: unique("error-trailer") },
          { headers: { "x-fail-code": String(Code.FailedPrecondition), "x-trailer-reason": "stock-locked" } },
        ),
      );
      const error = asConnectError(outcome.error);
      expect(error.code).toBe(Code.FailedPrecondition);
      expect(error.metadata.get("x-trailer-reason")).toBe("stock-locked");
    });
  });

  describe("interceptors", () => {
    it("runs client interceptors in order, outermost first", async () => {
      const trace: string[] = [];
      const recording =
        (name: string): Interceptor =>
        (next) =>
        async (req) => {
          trace.push(`${name}:before`);
          req.header.set(`x-client-${name}`, "1");
          const res = await next(req);
          trace.push(`${name}:after`);
          return res;
        };
      const traced = createTransport({
        target: echo.server.address,
        kind,
        interceptors: [recording("a"), recording("b")],
      });
      extraTransports.push(traced);
      const message = unique("client-interceptors");
      await createClient(EchoService, traced).echo({ message });
      expect(trace).toEqual(["a:before", "b:before", "b:after", "a:after"]);
      const seen = echo.observed(message).header;
      expect(seen["x-client-a"]).toBe("1");
      expect(seen["x-client-b"]).toBe("1");
    });

    it("runs server interceptors in order around the handler", async () => {
      const trace = unique("server-interceptors");
      let header: Headers | undefined;
      await client.echo({ message: trace }, { headers: { "x-trace": trace }, onHeader: (value) => (header = value) });
      expect(serverTrace.filter((entry) => entry.endsWith(`:${trace}`))).toEqual([
        `first:before:${trace}`,
        `second:before:${trace}`,
        `second:after:${trace}`,
        `first:after:${trace}`,
      ]);
      expect(echo.observed(trace).method).toBe("Echo");
      // Headers the interceptors add on the way out reach the client.
      expect(header?.get("x-server-interceptors")).toBe("second, first");
    });

    it("lets a server interceptor reject a call before the handler runs", async () => {
      const trace = unique("rejected");
      const outcome = await settle(client.echo({ message: trace }, { headers: { "x-trace": trace, "x-reject": "1" } }));
      const error = asConnectError(outcome.error);
      expect(error.code).toBe(Code.PermissionDenied);
      expect(error.rawMessage).toBe("rejected by the second interceptor");
      expect(serverTrace.filter((entry) => entry.endsWith(`:${trace}`))).toEqual([
        `first:before:${trace}`,
        `second:before:${trace}`,
      ]);
      expect(echo.observations.some((observation) => observation.message === trace)).toBe(false);
    });

    it("runs server interceptors around server-streaming calls too", async () => {
      const trace = unique("stream-interceptors");
      const outcome = await settle(
        (async () => {
          for await (const _ of client.echoStream(
            { message: trace, count: 1 },
            { headers: { "x-trace": trace, "x-reject": "1" } },
          )) {
            // no message is expected
          }
        })(),
      );
      expect(asConnectError(outcome.error).code).toBe(Code.PermissionDenied);
      expect(echo.observations.some((observation) => observation.message === trace)).toBe(false);
    });
  });

  describe("request size limit", () => {
    it("accepts a request below MAX_REQUEST_BYTES", async () => {
      const message = "x".repeat(60 * 1024);
      const response = await client.echo({ message });
      expect(response.message.length).toBe(message.length);
    });

    it("answers a request above MAX_REQUEST_BYTES with RESOURCE_EXHAUSTED", async () => {
      const outcome = await settle(client.echo({ message: "x".repeat(100 * 1024) }));
      expect(asConnectError(outcome.error).code).toBe(Code.ResourceExhausted);
      // The server is still fine afterwards.
      const message = unique("after-oversized");
      expect((await client.echo({ message })).message).toBe(message);
    });
  });
});
