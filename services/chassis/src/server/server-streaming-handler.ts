import { Metadata, status as GrpcStatus, type ServerWritableStream } from "@grpc/grpc-js";
import type { DescMessage, DescMethod, MessageShape } from "@bufbuild/protobuf";
import type { StreamRequest, StreamResponse } from "@connectrpc/connect";
import { methodPath } from "@shopmesh/sdk/internal";
import { CallContext, requestFor, responseFor, serverStoppingKey, withRequest } from "./call-context.js";
import { reportUndecodable, type AnyFn, type AnyImpl, type HostOptions } from "./host-options.js";
import { UndecodableRequest } from "./request-decoding.js";
import { serveResponseStream } from "./response-stream.js";

type Message = MessageShape<DescMessage>;

/** The grpc-js handler of a server-streaming method: one request, a stream of answers. */
export function serverStreamingHandler(method: DescMethod, impl: AnyImpl, options: HostOptions) {
  const url = methodPath(method);
  return (call: ServerWritableStream<Message, Message>) => {
    const started = performance.now();
    if (call.request instanceof UndecodableRequest) {
      call.emit("error", {
        code: GrpcStatus.INVALID_ARGUMENT,
        details: call.request.details,
        metadata: new Metadata(),
      });
      reportUndecodable(options, url, started, call.request.details);
      return;
    }
    const context = new CallContext(method, url, call);
    if (options.stopping) context.values.set(serverStoppingKey, options.stopping);
    // As Connect's router does: the interceptors see the request as a stream of one.
    const request = requestFor(context, true, single(call.request)) as StreamRequest;
    let own: StreamResponse | undefined;
    const innermost: AnyFn = async (req) => {
      let input: unknown;
      for await (const message of req.message as AsyncIterable<unknown>) input = message;
      const output = impl(input, withRequest(context, req, request)) as AsyncIterable<unknown>;
      own = responseFor(context, true, output) as StreamResponse;
      return own;
    };
    serveResponseStream(call, method, context, request, innermost, () => own, options, started);
  };
}

async function* single<T>(message: T): AsyncIterable<T> {
  yield message;
}
