import { Code, ConnectError, type Interceptor, type StreamResponse } from "@connectrpc/connect";
import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";
import type { CallLimiter } from "./admission.js";
import { boundedDetails, maxDetailsLength, statusName } from "./call-status.js";
import { admissionWaitKey } from "./call-context.js";
import { callEnded } from "./host-options.js";
import { oneRequestMessage, reachedGateKey } from "./http-request-decoding.js";
import type { CallRecord, RunningCalls } from "./host-service.js";
import type { RefusalListener } from "./call-gate.js";

/** Options for {@link httpCallGate}. */
export interface HttpCallGateOptions {
  /** Admission control shared with the gRPC port: one process, one budget of calls in flight. */
  limiter?: CallLimiter;
  /** Where running unary calls are kept, so that a server whose grace period is over can answer them. */
  running?: RunningCalls;
  /** Aborted when the server starts to stop: streams that would never end on their own end then. */
  stopping?: AbortSignal;
  /** Told about every call refused for overload, `afterMs` after it arrived (numeric gRPC code). */
  onRefused?: RefusalListener;
  /** Called once per call when its status is known. */
  onCallEnd?: (record: CallRecord) => void;
}

/**
 * The time a call arrived with, from whichever header its protocol uses
 * (Connect's `connect-timeout-ms`, gRPC-Web's `grpc-timeout`); undefined
 * when it set none. Connect has already refused a malformed one.
 */
function timeoutMsOf(header: Headers): number | undefined {
  const connect = header.get("connect-timeout-ms");
  if (connect !== null) return parseConnectTimeout(connect, Number.MAX_SAFE_INTEGER).timeoutMs;
  const grpc = header.get("grpc-timeout");
  if (grpc !== null) return parseGrpcTimeout(grpc, Number.MAX_SAFE_INTEGER).timeoutMs;
  return undefined;
}

/**
 * What the client sees of a failed call: a ConnectError as it is; when the
 * call was already aborted (deadline, shutdown), the abort's reason, since
 * what the handler threw follows from it; anything else becomes INTERNAL
 * with a generic message, so that no stack trace or SQL reaches a browser
 * (connect-node would send the error's own message). Its message is held
 * to the gRPC port's length (see boundedDetails): on HTTP/2 it travels in
 * the trailers.
 */
function visibleError(error: unknown, signal: AbortSignal): { error: ConnectError; internal?: unknown } {
  if (error instanceof ConnectError) return { error: bounded(error) };
  if (signal.aborted && signal.reason instanceof ConnectError) return { error: bounded(signal.reason) };
  return { error: new ConnectError("internal error", Code.Internal), internal: error };
}

function bounded(error: ConnectError): ConnectError {
  if (error.rawMessage.length <= maxDetailsLength) return error;
  const cut = new ConnectError(boundedDetails(error.rawMessage), error.code, error.metadata, undefined, error.cause);
  cut.details = error.details;
  return cut;
}

/** Waits for a slot; rejects with RESOURCE_EXHAUSTED when refused, or with the abort reason when the call ends first. */
function waitForSlot(limiter: CallLimiter, timeoutMs: number | undefined, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const onAbort = () => {
      if (settled) return;
      settled = true;
      if (waiter !== undefined) limiter.leave(waiter);
      reject(signal.reason);
    };
    const waiter = limiter.wait(
      timeoutMs,
      () => {
        if (settled) {
          // Admitted after the call ended: the slot goes straight back.
          limiter.release(0);
          return;
        }
        settled = true;
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      (details, pushbackMs) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        // The same pushback as on the gRPC port, and HTTP's own Retry-After (whole seconds) for plain HTTP clients.
        const metadata = {
          "grpc-retry-pushback-ms": String(pushbackMs),
          "retry-after": String(Math.max(1, Math.ceil(pushbackMs / 1000))),
        };
        reject(new ConnectError(details, Code.ResourceExhausted, metadata));
      },
    );
    if (!settled) signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Ends a stream's messages when `stopping` aborts, even while the handler
 * waits for a message that may never come (an event stream following new
 * commits); connect-node then ends the response, which aborts the handler's
 * signal.
 */
async function* untilStopped<T>(messages: AsyncIterable<T>, stopping: AbortSignal): AsyncIterable<T> {
  const iterator = messages[Symbol.asyncIterator]();
  let onAbort: (() => void) | undefined;
  const stopped = new Promise<IteratorResult<T>>((resolve) => {
    onAbort = () => resolve({ done: true, value: undefined });
    if (stopping.aborted) onAbort();
    else stopping.addEventListener("abort", onAbort, { once: true });
  });
  try {
    for (;;) {
      const next = await Promise.race([iterator.next(), stopped]);
      if (next.done) return;
      yield next.value;
    }
  } finally {
    stopping.removeEventListener("abort", onAbort!);
    // Not awaited: a generator's return waits for the next() still pending in it.
    iterator.return?.()?.catch(() => undefined);
  }
}

/** The status of a call that succeeded; Connect's Code has no name for it. */
const ok = 0 as Code;

/** Passes `messages` on, and tells how the stream ended. */
async function* reported<T>(
  messages: AsyncIterable<T>,
  onEnd: () => void,
  onError: (error: unknown) => never,
): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (error) {
    onError(error);
  }
  onEnd();
}

/**
 * The first Connect interceptor of every call on the HTTP port (Connect and
 * gRPC-Web), doing there what the grpc-js call gate and host adapter do on
 * the gRPC port:
 *
 * - a unary call needs an admission slot from the limiter the gRPC port
 *   uses, waits for one no longer than it can afford, and is refused with
 *   RESOURCE_EXHAUSTED otherwise; the slot is held until its handler
 *   settles. Streaming calls do not count (see callGate). Connect has read
 *   the request body by then, bounded by MAX_REQUEST_BYTES.
 * - a unary call still running when the server's shutdown grace period is
 *   over is answered by the server (UNAVAILABLE), and streams end when the
 *   server starts to stop;
 * - an error that is not a ConnectError reaches the client as INTERNAL
 *   "internal error" and the log in full;
 * - every call is reported to `onCallEnd`, as on the gRPC port;
 * - a server-streaming call's request is read through oneRequestMessage, so
 *   that one connect cannot read gets INVALID_ARGUMENT, as unary ones do on
 *   the HTTP port (see requestErrorsAsInvalid; the bench's connect-node gRPC
 *   listener leaves unary answers as connect gives them).
 */
export function httpCallGate(options: HttpCallGateOptions): Interceptor {
  const { limiter, running, stopping, onRefused, onCallEnd } = options;
  return (next) => async (req) => {
    req.contextValues.set(reachedGateKey, true);
    const started = performance.now();
    const path = `/${req.service.typeName}/${req.method.name}`;
    const timeoutMs = timeoutMsOf(req.header);
    const report = (code: Code, internal?: unknown) => {
      if (onCallEnd === undefined) return;
      const record = {
        method: path,
        code: statusName(code),
        durationMs: performance.now() - started,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
        ...(internal === undefined ? {} : { internal }),
      };
      callEnded(onCallEnd, record, req.contextValues);
    };
    const failed = (error: unknown): never => {
      const visible = visibleError(error, req.signal);
      report(visible.error.code, visible.internal);
      throw visible.error;
    };

    if (req.stream) {
      try {
        const request =
          req.method.methodKind === "server_streaming"
            ? { ...req, message: oneRequestMessage(req.message, req.method) }
            : req;
        const response = (await next(request)) as StreamResponse;
        const messages = stopping === undefined ? response.message : untilStopped(response.message, stopping);
        return { ...response, message: reported(messages, () => report(ok), failed) };
      } catch (error) {
        return failed(error);
      }
    }

    let admitted = false;
    if (limiter !== undefined) {
      if (limiter.tryAcquire()) admitted = true;
      else {
        try {
          await waitForSlot(limiter, timeoutMs, req.signal);
          admitted = true;
          // As on the gRPC port: a default budget counts from the call's arrival, not from its admission.
          req.contextValues.set(admissionWaitKey, performance.now() - started);
        } catch (error) {
          if (error instanceof ConnectError && error.code === Code.ResourceExhausted)
            onRefused?.(path, error.code, error.rawMessage, performance.now() - started);
          return failed(error);
        }
      }
    }
    const admittedAt = performance.now();
    const handling = next(req);
    if (admitted) {
      void handling.then(
        () => limiter!.release(performance.now() - admittedAt),
        () => limiter!.release(performance.now() - admittedAt),
      );
    }
    let cut: ((reason: ConnectError) => void) | undefined;
    const cutOff = new Promise<never>((_, reject) => (cut = reject));
    running?.add(cut!);
    try {
      const response = await Promise.race([handling, cutOff]);
      report(ok);
      return response;
    } catch (error) {
      return failed(error);
    } finally {
      running?.delete(cut!);
    }
  };
}
