import { once } from "node:events";
import { Metadata, status as GrpcStatus, type ServerDuplexStream, type ServerWritableStream } from "@grpc/grpc-js";
import { create, type DescMessage, type DescMethod, type MessageShape } from "@bufbuild/protobuf";
import type { StreamRequest, StreamResponse } from "@connectrpc/connect";
import { applyInterceptors } from "@shopmesh/sdk/internal";
import { toCallStatus } from "./call-status.js";
import { callFinished, mergeMetadata, responseMetadata, type CallContext } from "./call-context.js";
import { reportCall, type AnyFn, type HostOptions } from "./host-options.js";

type Message = MessageShape<DescMessage>;

/** A grpc-js call that answers with a stream: server-streaming or bidi. */
export type StreamingResponseCall = ServerWritableStream<Message, Message> | ServerDuplexStream<Message, Message>;

/**
 * Runs a call whose answer is a stream of messages (server-streaming and
 * bidi) through the interceptors and writes what the implementation yields:
 * the response header goes with the first message (or with the status, if
 * there is none), each write waits while grpc-js's buffer is full, and the
 * call ends with the response trailer, or with the status of what was
 * thrown. `own` returns the response `innermost` made, if it got that far.
 */
export function serveResponseStream(
  call: StreamingResponseCall,
  method: DescMethod,
  context: CallContext,
  request: StreamRequest,
  innermost: AnyFn,
  own: () => StreamResponse | undefined,
  options: HostOptions,
  started: number,
): void {
  const timeoutMs = context.timeoutMs();
  let headerSent = false;
  const sendHeader = (header: Metadata | undefined) => {
    if (headerSent) return;
    headerSent = true;
    call.sendMetadata(header ?? new Metadata());
  };
  let response: StreamResponse | undefined;
  const run = async () => {
    response = (await applyInterceptors(innermost, options.interceptors)(request)) as StreamResponse;
    const signal = context.signal;
    const shown = response;
    // Read at the first message, not before: a generator handler runs (and may set headers) only when iterated.
    const headerOf = () => responseMetadata(context, shown, own() ?? {}).header;
    for await (const message of response.message as AsyncIterable<unknown>) {
      if (signal.aborted) break;
      if (!headerSent) sendHeader(headerOf());
      if (!call.write(create(method.output, message as never))) {
        // Backpressure: wait until grpc-js has flushed, or the call ends.
        await once(call, "drain", { signal }).catch(() => undefined);
      }
    }
    if (signal.aborted) throw signal.reason;
    if (!headerSent) sendHeader(headerOf());
    call.end(responseMetadata(context, shown, own() ?? {}).trailer ?? new Metadata());
  };
  run().then(
    () => {
      context.end(callFinished);
      reportCall(options, context, started, timeoutMs, { code: GrpcStatus.OK });
    },
    (error: unknown) => {
      // The headers of the response the interceptors returned, if the call got that far.
      const { header, trailer } = response
        ? responseMetadata(context, response, own() ?? {})
        : { header: context.responseMetadata("header"), trailer: context.responseMetadata("trailer") };
      const status = toCallStatus(error, context.abortReason, trailer);
      if (!headerSent && header !== undefined) mergeMetadata(status.metadata, header);
      call.emit("error", { code: status.code, details: status.details, metadata: status.metadata });
      context.end(callFinished);
      reportCall(options, context, started, timeoutMs, status);
    },
  );
}
