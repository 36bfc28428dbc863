import type { ServerDuplexStream } from "@grpc/grpc-js";
import type { DescMessage, DescMethod, MessageShape } from "@bufbuild/protobuf";
import type { StreamRequest, StreamResponse } from "@connectrpc/connect";
import { methodPath } from "@shopmesh/sdk/internal";
import { CallContext, requestFor, responseFor, serverStoppingKey, withRequest } from "./call-context.js";
import type { AnyFn, AnyImpl, HostOptions } from "./host-options.js";
import { requestMessages } from "./request-stream.js";
import { serveResponseStream } from "./response-stream.js";

type Message = MessageShape<DescMessage>;

/**
 * The grpc-js handler of a bidi-streaming method: the implementation reads
 * the requests as they come and yields answers whenever it likes (full
 * duplex), or reads them all first (half duplex); either way the answers are
 * written as in server streaming.
 */
export function bidiStreamingHandler(method: DescMethod, impl: AnyImpl, options: HostOptions) {
  const url = methodPath(method);
  return (call: ServerDuplexStream<Message, Message>) => {
    const started = performance.now();
    const context = new CallContext(method, url, call);
    if (options.stopping) context.values.set(serverStoppingKey, options.stopping);
    const request = requestFor(context, true, requestMessages(call, context)) as StreamRequest;
    let own: StreamResponse | undefined;
    const innermost: AnyFn = async (req) => {
      const output = impl(req.message, withRequest(context, req, request)) as AsyncIterable<unknown>;
      own = responseFor(context, true, output) as StreamResponse;
      return own;
    };
    serveResponseStream(call, method, context, request, innermost, () => own, options, started);
  };
}
