import type { Readable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { callFinished, deadlinePassed, type CallContext } from "./call-context.js";
import { UndecodableRequest } from "./request-decoding.js";

/**
 * The request messages of a client-streaming or bidi call, as the async
 * iterable a Connect implementation reads. Reading is pulled: grpc-js asks
 * the client for more only as the implementation takes messages, so a slow
 * reader holds the sender back through HTTP/2 flow control instead of
 * buffering without bound. When the call ends early (deadline, cancellation)
 * reading fails with the reason it ended, as a ConnectError, not with the
 * stream's own "premature close". An implementation that stops reading early
 * leaves the call open: the answer is still to come.
 */
export async function* requestMessages(call: Readable, context: CallContext): AsyncGenerator<unknown> {
  // Arms the deadline's timer, so that the context ends when the deadline passes even if nothing else asked for it.
  void context.signal;
  try {
    for await (const message of call.iterator({ destroyOnReturn: false })) {
      // The call gate answers these before they get here; this keeps a host without the gate from handing one on.
      if (message instanceof UndecodableRequest) throw new ConnectError(message.details, Code.InvalidArgument);
      yield message;
    }
  } catch (error) {
    if (error instanceof ConnectError) throw error;
    throw context.abortReason === undefined ? error : endedEarly(context);
  }
  // A destroyed stream can also end quietly; a call that ended early is not a complete request stream.
  if (!call.readableEnded) throw endedEarly(context);
  // A client's reset ends the HTTP/2 stream's readable side before it closes
  // it (Node pushes the end, then emits close), so grpc-js reports a
  // half-close just before the cancellation. Node reports the reset in the
  // loop's next pass over I/O, after this pass's immediates: two immediates
  // let that pass run, so that an implementation never takes a cancelled
  // upload for a complete one.
  await new Promise<void>((resolve) => setImmediate(resolve));
  await new Promise<void>((resolve) => setImmediate(resolve));
  // grpc-js ends a call whose deadline passed the same way, and closes it only once the client has acknowledged.
  if (context.hasDeadline && context.timeoutMs()! <= 0) context.end(deadlinePassed());
  if (context.abortReason instanceof ConnectError && context.abortReason !== callFinished) throw context.abortReason;
}

function endedEarly(context: CallContext): ConnectError {
  const reason = context.abortReason;
  return reason instanceof ConnectError ? reason : new ConnectError("the request stream ended early", Code.Canceled);
}
