import { status as GrpcStatus, type sendUnaryData, type ServerReadableStream } from "@grpc/grpc-js";
import { create, type DescMessage, type DescMethod, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type StreamRequest, type StreamResponse } from "@connectrpc/connect";
import { applyInterceptors, methodPath } from "@shopmesh/sdk/internal";
import { toCallStatus } from "./call-status.js";
import {
  CallContext,
  callFinished,
  hasEntries,
  requestFor,
  responseFor,
  responseMetadata,
  serverStoppingKey,
  withRequest,
} from "./call-context.js";
import { reportCall, type AnyFn, type AnyImpl, type HostOptions } from "./host-options.js";
import { requestMessages } from "./request-stream.js";

type Message = MessageShape<DescMessage>;

/**
 * The grpc-js handler of a client-streaming method: a stream of requests,
 * one answer. As in Connect's router, the interceptors see both sides as
 * streams (the answer a stream of one); the answer is sent as a unary one
 * is, and a server past its shutdown grace answers it itself (see
 * RunningCalls).
 */
export function clientStreamingHandler(method: DescMethod, impl: AnyImpl, options: HostOptions) {
  const url = methodPath(method);
  return (call: ServerReadableStream<Message, Message>, callback: sendUnaryData<Message>) => {
    const started = performance.now();
    const context = new CallContext(method, url, call);
    if (options.stopping) context.values.set(serverStoppingKey, options.stopping);
    const timeoutMs = context.timeoutMs();
    const request = requestFor(context, true, requestMessages(call, context)) as StreamRequest;
    let own: StreamResponse | undefined;
    const innermost: AnyFn = async (req) => {
      const output = await impl(req.message, withRequest(context, req, request));
      own = responseFor(context, true, single(create(method.output, output as never))) as StreamResponse;
      return own;
    };
    let answered = false;
    const running = options.running;
    const cut = (reason: ConnectError) => {
      if (answered) return;
      answered = true;
      running?.delete(cut);
      context.end(reason);
      const status = toCallStatus(reason, undefined, undefined);
      callback({ code: status.code, details: status.details, metadata: status.metadata });
      reportCall(options, context, started, timeoutMs, status);
    };
    running?.add(cut);
    const run = async () => {
      const response = (await applyInterceptors(innermost, options.interceptors)(request)) as StreamResponse;
      return { response, message: await onlyMessage(response.message, method) };
    };
    run().then(
      ({ response, message }) => {
        if (answered) return;
        answered = true;
        running?.delete(cut);
        const { header, trailer } = responseMetadata(context, response, own ?? {});
        if (hasEntries(header)) call.sendMetadata(header);
        callback(null, message, trailer);
        context.end(callFinished);
        reportCall(options, context, started, timeoutMs, { code: GrpcStatus.OK });
      },
      (error: unknown) => {
        if (answered) return;
        answered = true;
        running?.delete(cut);
        const status = toCallStatus(error, context.abortReason, context.responseMetadata("trailer"));
        const header = context.responseMetadata("header");
        if (hasEntries(header)) call.sendMetadata(header);
        callback({ code: status.code, details: status.details, metadata: status.metadata });
        context.end(callFinished);
        reportCall(options, context, started, timeoutMs, status);
      },
    );
  };
}

/** The one answer of a client-streaming call; an interceptor that made it zero or several is a server bug. */
async function onlyMessage(messages: AsyncIterable<unknown>, method: DescMethod): Promise<Message> {
  let answer: unknown;
  let count = 0;
  for await (const message of messages) {
    answer = message;
    count++;
  }
  if (count !== 1) {
    throw new ConnectError(
      `${method.parent.typeName}.${method.name} answered with ${count} messages, not one`,
      Code.Internal,
    );
  }
  return create(method.output, answer as never);
}

async function* single<T>(message: T): AsyncIterable<T> {
  yield message;
}
