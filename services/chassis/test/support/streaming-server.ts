import { EventEmitter } from "node:events";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { createLogger, hosted, startServer, type RunningServer } from "@shopmesh/chassis";
import {
  SimpleResponseSchema,
  StreamingInputCallResponseSchema,
  StreamingOutputCallResponseSchema,
} from "../../../../gen/grpc/testing/messages_pb.js";
import { TestService } from "../../../../gen/grpc/testing/test_pb.js";

/** How one handler call ended, as the handler saw it. */
export interface HandlerEnd {
  method: string;
  /** "ok", or the code of what the handler's reading or writing threw. */
  outcome: "ok" | Code;
  /** The code of the reason the call's signal was aborted with, when the handler ended. */
  signalReason: Code | undefined;
}

/** A TestService server in the test process, and what its handlers saw. */
export interface StreamingServer {
  readonly server: RunningServer;
  readonly ends: HandlerEnd[];
  /** Responses the FullDuplexCall handler has produced so far, over all calls. */
  readonly produced: () => number;
  /**
   * "message" (method name) when a streaming handler has taken a request
   * message, "end" (a HandlerEnd) when a handler has ended.
   */
  readonly events: EventEmitter;
  /** Methods and kinds the interceptor saw, in order. */
  readonly intercepted: { method: string; stream: boolean }[];
}

/**
 * Starts `grpc.testing.TestService` with the chassis's startServer on
 * 127.0.0.1 port 0 (real gRPC over loopback, in the test process so that the
 * tests can read what the handlers saw). Implemented: UnaryCall,
 * StreamingInputCall, FullDuplexCall and HalfDuplexCall; left out, so that
 * they answer UNIMPLEMENTED: EmptyCall, CacheableUnaryCall,
 * StreamingOutputCall and UnimplementedCall. An interceptor refuses every call
 * that sends `x-deny` with PERMISSION_DENIED, before any handler runs.
 */
export async function startStreamingServer(options: { shutdownGraceMs?: number } = {}): Promise<StreamingServer> {
  const ends: HandlerEnd[] = [];
  const events = new EventEmitter();
  const intercepted: { method: string; stream: boolean }[] = [];
  let produced = 0;

  const record = (method: string, context: HandlerContext, error?: unknown) => {
    const end: HandlerEnd = {
      method,
      outcome: error === undefined ? "ok" : error instanceof ConnectError ? error.code : Code.Unknown,
      signalReason: context.signal.aborted ? ConnectError.from(context.signal.reason).code : undefined,
    };
    ends.push(end);
    events.emit("end", end);
  };

  const impl: Partial<ServiceImpl<typeof TestService>> = {
    unaryCall(request) {
      return create(SimpleResponseSchema, { payload: { body: new Uint8Array(request.responseSize) } });
    },
    async streamingInputCall(requests, context) {
      context.responseHeader.set("x-kind", "client-streaming");
      let aggregatedPayloadSize = 0;
      try {
        for await (const request of requests) {
          aggregatedPayloadSize += request.payload?.body.length ?? 0;
          events.emit("message", "StreamingInputCall");
        }
      } catch (error) {
        record("StreamingInputCall", context, error);
        throw error;
      }
      context.responseTrailer.set("x-total", String(aggregatedPayloadSize));
      record("StreamingInputCall", context);
      return create(StreamingInputCallResponseSchema, { aggregatedPayloadSize });
    },
    async *fullDuplexCall(requests, context) {
      context.responseHeader.set("x-kind", "bidi");
      try {
        for await (const request of requests) {
          events.emit("message", "FullDuplexCall");
          if (request.responseStatus !== undefined && request.responseStatus.code !== 0) {
            context.responseTrailer.set("x-failed", "on purpose");
            throw new ConnectError(request.responseStatus.message, request.responseStatus.code as Code);
          }
          for (const parameters of request.responseParameters) {
            produced++;
            yield create(StreamingOutputCallResponseSchema, { payload: { body: new Uint8Array(parameters.size) } });
          }
        }
      } catch (error) {
        record("FullDuplexCall", context, error);
        throw error;
      }
      context.responseTrailer.set("x-kind-trailer", "bidi");
      record("FullDuplexCall", context);
    },
    async *halfDuplexCall(requests) {
      const sizes: number[] = [];
      for await (const request of requests) sizes.push(...request.responseParameters.map((p) => p.size));
      for (const size of sizes) yield { payload: { body: new Uint8Array(size) } };
    },
  };

  const deny: Interceptor = (next) => async (req) => {
    intercepted.push({ method: req.method.name, stream: req.stream });
    if (req.header.has("x-deny")) throw new ConnectError("denied by the interceptor", Code.PermissionDenied);
    return next(req);
  };

  const server = await startServer({
    config: {
      host: "127.0.0.1",
      port: 0,
      shutdownDelayMs: 0,
      shutdownGraceMs: options.shutdownGraceMs ?? 1_000,
      maxRequestBytes: 1024 * 1024,
    },
    logger: createLogger("streaming-test", "silent"),
    services: [hosted(TestService, impl)],
    interceptors: [deny],
  });
  return {
    server,
    ends,
    produced: () => produced,
    intercepted,
    events,
  };
}
