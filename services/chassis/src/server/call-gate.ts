import { Metadata, ServerInterceptingCall, status as GrpcStatus, type ServerInterceptor, type ServerListener } from "@grpc/grpc-js";
import type { CallLimiter } from "./admission.js";
import { UndecodableRequest } from "./request-decoding.js";

/** Options for {@link callGate}. */
export interface CallGateOptions {
  /** Admission control for unary calls; none when absent. */
  limiter?: CallLimiter;
  /** Methods that bypass admission control, by path (health checks). */
  exempt?: (path: string) => boolean;
  /** Told about every call the gate ends itself, before a handler ran. */
  onRefused?: (path: string, code: GrpcStatus, details: string) => void;
}

/**
 * The grpc-js server interceptor every call passes before its handler, on
 * every method the server hosts (reflection's and health's included):
 *
 * - A request message that could not be decoded (an {@link UndecodableRequest}
 *   from the deserializer) ends the call with INVALID_ARGUMENT.
 * - A unary call that is not exempt waits for admission (see CallLimiter)
 *   before its handler is told about it, and so before its body is read; a
 *   refused call ends with RESOURCE_EXHAUSTED. Streaming calls do not count:
 *   they are long-lived (event streams, health watches, reflection), and a
 *   slot held for hours would shrink the limit for everything else; they are
 *   bounded per connection by MAX_CONCURRENT_STREAMS instead.
 */
export function callGate(options: CallGateOptions): ServerInterceptor {
  const { limiter, exempt, onRefused } = options;
  return (method, call) => {
    const refuse = (code: GrpcStatus, details: string) => {
      onRefused?.(method.path, code, details);
      call.sendStatus({ code, details, metadata: new Metadata() });
    };
    const admitted = limiter !== undefined && !method.requestStream && !method.responseStream && !exempt?.(method.path);
    let ended: (() => void) | undefined;
    const listener: ServerListener = {
      onReceiveMessage(message, next) {
        if (message instanceof UndecodableRequest) refuse(GrpcStatus.INVALID_ARGUMENT, message.details);
        else next(message);
      },
    };
    if (admitted) {
      listener.onReceiveMetadata = (metadata, next) => {
        const deadline = call.getDeadline();
        const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
        const timeLeftMs = Number.isFinite(deadlineMs) ? deadlineMs - Date.now() : undefined;
        ended = limiter.request(
          timeLeftMs,
          () => next(metadata),
          (details) => refuse(GrpcStatus.RESOURCE_EXHAUSTED, details),
        );
      };
      // grpc-js reports every call's end here: status sent, client gone, deadline passed.
      listener.onCancel = () => ended?.();
    }
    return new ServerInterceptingCall(call, { start: (next) => next(listener) });
  };
}
