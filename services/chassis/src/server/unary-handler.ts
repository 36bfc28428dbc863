import { Metadata, status as GrpcStatus, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import { create, type DescMessage, type DescMethod, type MessageShape } from "@bufbuild/protobuf";
import type { ConnectError, UnaryResponse } from "@connectrpc/connect";
import { applyInterceptors, methodPath } from "@shopmesh/sdk/internal";
import { toCallStatus } from "./call-status.js";
import { admittedCall } from "./call-gate.js";
import {
  CallContext,
  callFinished,
  hasEntries,
  requestFor,
  responseFor,
  responseMetadata,
  withRequest,
} from "./call-context.js";
import { reportCall, reportUndecodable, type AnyFn, type AnyImpl, type HostOptions } from "./host-options.js";
import { UndecodableRequest } from "./request-decoding.js";

type Message = MessageShape<DescMessage>;

/** The grpc-js handler of a unary method: one request, one answer, through the interceptors. */
export function unaryHandler(method: DescMethod, impl: AnyImpl, options: HostOptions) {
  const url = methodPath(method);
  return (call: ServerUnaryCall<Message, Message>, callback: sendUnaryData<Message>) => {
    const started = performance.now();
    if (call.request instanceof UndecodableRequest) {
      callback({ code: GrpcStatus.INVALID_ARGUMENT, details: call.request.details, metadata: new Metadata() });
      reportUndecodable(options, url, started, call.request.details);
      return;
    }
    const admitted = admittedCall(call.metadata);
    const context = new CallContext(method, url, call, admitted);
    const timeoutMs = context.timeoutMs();
    const request = requestFor(context, false, call.request);
    let own: UnaryResponse | undefined;
    const innermost: AnyFn = async (req) => {
      const output = await impl(req.message, withRequest(context, req, request));
      own = responseFor(context, false, create(method.output, output as never)) as UnaryResponse;
      return own;
    };
    // Answered once: by the handler, or by the server cutting the call off when its shutdown grace is over.
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
    admitted?.handlerStarted();
    applyInterceptors(
      innermost,
      options.interceptors,
    )(request).then(
      (response) => {
        admitted?.handlerSettled();
        if (answered) return;
        answered = true;
        running?.delete(cut);
        const { header, trailer } = responseMetadata(context, response, own ?? {});
        if (hasEntries(header)) call.sendMetadata(header);
        callback(null, response.message as Message, trailer);
        context.end(callFinished);
        reportCall(options, context, started, timeoutMs, { code: GrpcStatus.OK });
      },
      (error: unknown) => {
        admitted?.handlerSettled();
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
