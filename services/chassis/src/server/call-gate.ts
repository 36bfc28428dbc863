import {
  Metadata,
  ServerInterceptingCall,
  status as GrpcStatus,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServerListener,
} from "@grpc/grpc-js";
import { constants as http2Constants, type ServerHttp2Stream } from "node:http2";
import type { CallLimiter, Waiter } from "./admission.js";
import { deadlineMs } from "./deadline-ms.js";
import { type ArrivingRequest, maxRequestsArriving, RequestArrivals } from "./request-arrivals.js";
import { oneMessageRefusal, UndecodableRequest } from "./request-decoding.js";

/**
 * Told about a call ended before its handler ran, with its numeric gRPC
 * code, by either port's gate or where a request is decoded.
 */
export type RefusalListener = (path: string, code: number, details: string, afterMs: number) => void;

/** Options for {@link callGate}. */
export interface CallGateOptions {
  /**
   * Admission control for unary calls; none when absent. Its settings also
   * bound the requests still arriving (see {@link RequestArrivals}), for
   * every call with one request message: without it, they are not bounded.
   */
  limiter?: CallLimiter;
  /** Methods that bypass admission control, by path (health checks); their arrivals are still bounded. */
  exempt?: (path: string) => boolean;
  /**
   * Told about every call the gate ends itself, before a handler ran:
   * `afterMs` after its request had arrived whole (refused for overload), or
   * after its headers (a message that does not decode, a request of no
   * message or more than one).
   */
  onRefused?: RefusalListener;
  /** Told about every call cut because its request never finished arriving (see {@link RequestArrivals}), `afterMs` after its headers. */
  onCut?: (path: string, details: string, afterMs: number) => void;
}

/**
 * What the host of an admitted call's handler tells the gate, found by the
 * call's request metadata (the object grpc-js hands to the handler).
 */
export interface AdmittedCall {
  /** Time the call waited for its slot, ms; 0 when one was free. */
  readonly waitedMs: number;
  /** The handler has started; the slot is held until {@link handlerSettled}, even past the call's end. */
  handlerStarted(): void;
  handlerSettled(): void;
}

type InterceptingServerListener = Parameters<ServerInterceptingCallInterface["start"]>[0];
type PartialStatusObject = Parameters<ServerInterceptingCallInterface["sendStatus"]>[0];

/** gRPC's retry pushback: how long the caller should wait before trying again, ms. */
const retryPushbackKey = "grpc-retry-pushback-ms";

const admittedCalls = new WeakMap<Metadata, AdmittedCall>();

/** The gate's record of the call whose request metadata this is, if admission control counts it. */
export function admittedCall(metadata: Metadata): AdmittedCall | undefined {
  return admittedCalls.get(metadata);
}

/**
 * A call with one request message (unary or server-streaming). Under
 * admission control it is kept among the requests arriving (see
 * {@link RequestArrivals}) from its headers until its request has arrived
 * whole (the half-close), when grpc-js may start its handler: one that never
 * ends its request is cut once too many such calls are kept. A request of
 * no message or more than one is refused with INVALID_ARGUMENT. It is the
 * call grpc-js's handler talks to and the listener of the call beneath, in
 * one object with its methods on the prototype (grpc-js's
 * ServerInterceptingCall copies a listener's methods unbound, so it would
 * need closures per call).
 */
class ArrivingCall implements ServerInterceptingCallInterface, InterceptingServerListener, ArrivingRequest {
  protected listener: InterceptingServerListener | undefined;
  /** When the call began, its headers read. */
  readonly startedAt = performance.now();
  protected ended = false;
  #messages = 0;

  constructor(
    readonly inner: ServerInterceptingCallInterface,
    readonly path: string,
    readonly arrivals: RequestArrivals<ArrivingCall> | undefined,
    readonly onCut: CallGateOptions["onCut"],
    readonly onRefused: CallGateOptions["onRefused"],
  ) {}

  start(listener: InterceptingServerListener): void {
    this.listener = listener;
    this.inner.start(this);
  }

  onReceiveMetadata(metadata: Metadata): void {
    // Here rather than in start: grpc-js calls this only for a stream still open, and onCancel only after it.
    this.arrivals?.add(this);
    this.listener!.onReceiveMetadata(metadata);
  }

  onReceiveMessage(message: unknown): void {
    if (this.ended) return;
    // grpc-js would answer UNIMPLEMENTED "Received a second request message for server streaming method", unary or not.
    if (++this.#messages > 1) this.#refuseRequest("more than one");
    else this.listener!.onReceiveMessage(message);
  }

  onReceiveHalfClose(): void {
    this.arrivals?.delete(this);
    if (this.ended) return;
    if (this.#messages === 0) this.#refuseRequest("none");
    else this.requestArrived();
  }

  /** The request has arrived whole, its one message and the half-close: the handler may start. */
  protected requestArrived(): void {
    this.listener!.onReceiveHalfClose();
  }

  #refuseRequest(sent: "none" | "more than one"): void {
    this.arrivals?.delete(this);
    const details = oneMessageRefusal(this.path, sent);
    this.onRefused?.(this.path, GrpcStatus.INVALID_ARGUMENT, details, performance.now() - this.startedAt);
    this.end(GrpcStatus.INVALID_ARGUMENT, details);
  }

  /** Ends a call whose request has not arrived whole: see {@link RequestArrivals}. */
  cut(details: string, afterMs: number): void {
    this.onCut?.(this.path, details, afterMs);
    this.end(GrpcStatus.RESOURCE_EXHAUSTED, details);
  }

  /** Answers the call before its handler ran, and lets go of its stream. */
  protected end(code: GrpcStatus, details: string, metadata = new Metadata()): void {
    this.ended = true;
    this.inner.sendStatus({ code, details, metadata });
    // grpc-js ends only its own side of the stream: a caller that never ends
    // its side would keep the stream, and grpc-js's call with what it had
    // buffered, for as long as the connection lasts. Having answered, the
    // server may reset the stream with NO_ERROR (RFC 9113, section 8.1).
    // grpc-js offers no way to, so its call's stream is reached directly:
    // this gate is the first interceptor, so `inner` is grpc-js's own call.
    const stream = (this.inner as { stream?: Partial<Pick<ServerHttp2Stream, "closed" | "close">> }).stream;
    if (typeof stream?.close === "function" && stream.closed === false) stream.close(http2Constants.NGHTTP2_NO_ERROR);
  }

  onCancel(): void {
    this.arrivals?.delete(this);
    this.ended = true;
    this.listener!.onCancel();
  }

  sendMetadata(metadata: Metadata): void {
    this.inner.sendMetadata(metadata);
  }
  sendMessage(message: unknown, callback: () => void): void {
    this.inner.sendMessage(message, callback);
  }
  sendStatus(status: PartialStatusObject): void {
    this.inner.sendStatus(status);
  }
  startRead(): void {
    this.inner.startRead();
  }
  getPeer() {
    return this.inner.getPeer();
  }
  getDeadline() {
    return this.inner.getDeadline();
  }
  getHost() {
    return this.inner.getHost();
  }
  getAuthContext() {
    return this.inner.getAuthContext();
  }
  getConnectionInfo() {
    return this.inner.getConnectionInfo();
  }
  getMetricsRecorder() {
    return this.inner.getMetricsRecorder();
  }
}

/**
 * One unary call under admission control. It asks for a slot once its
 * request has arrived whole (the half-close), when its handler could run: a
 * caller that sends the headers and never ends the request holds a stream
 * but no slot, and is cut as an {@link ArrivingCall}.
 * Its slot is freed when the call has ended (status sent, client gone,
 * deadline passed: grpc-js's onCancel) and its handler has settled: a
 * handler that is still running after its deadline still uses the process,
 * and counts until it returns.
 */
class GatedCall extends ArrivingCall implements AdmittedCall {
  /** When the whole request had arrived; -1 before. */
  #requestCompleteAt = -1;
  #admittedAt = -1;
  waitedMs = 0;
  #waiter: Waiter | undefined;
  #handlerRunning = false;

  constructor(
    inner: ServerInterceptingCallInterface,
    path: string,
    arrivals: RequestArrivals<ArrivingCall>,
    onCut: CallGateOptions["onCut"],
    onRefused: CallGateOptions["onRefused"],
    readonly limiter: CallLimiter,
  ) {
    super(inner, path, arrivals, onCut, onRefused);
  }

  override onReceiveMetadata(metadata: Metadata): void {
    admittedCalls.set(metadata, this);
    super.onReceiveMetadata(metadata);
  }

  protected override requestArrived(): void {
    this.#requestCompleteAt = performance.now();
    if (this.limiter.tryAcquire()) {
      this.#admittedAt = this.#requestCompleteAt;
      this.listener!.onReceiveHalfClose();
      return;
    }
    this.#waiter = this.limiter.wait(
      deadlineMs(this.inner.getDeadline()) - Date.now(),
      () => this.#admitted(),
      (details, pushbackMs) => this.#refuse(details, pushbackMs),
    );
  }

  #admitted(): void {
    this.#waiter = undefined;
    this.#admittedAt = performance.now();
    this.waitedMs = this.#admittedAt - this.#requestCompleteAt;
    if (this.ended) {
      this.#maybeRelease();
      return;
    }
    this.listener!.onReceiveHalfClose();
  }

  #refuse(details: string, pushbackMs: number): void {
    this.#waiter = undefined;
    this.onRefused?.(this.path, GrpcStatus.RESOURCE_EXHAUSTED, details, performance.now() - this.#requestCompleteAt);
    const trailers = new Metadata();
    trailers.set(retryPushbackKey, String(pushbackMs));
    this.end(GrpcStatus.RESOURCE_EXHAUSTED, details, trailers);
  }

  override onCancel(): void {
    if (this.#waiter !== undefined) {
      this.limiter.leave(this.#waiter);
      this.#waiter = undefined;
    }
    this.ended = true;
    this.#maybeRelease();
    super.onCancel();
  }

  handlerStarted(): void {
    this.#handlerRunning = true;
  }

  handlerSettled(): void {
    this.#handlerRunning = false;
    this.#maybeRelease();
  }

  #maybeRelease(): void {
    if (this.#admittedAt < 0 || !this.ended || this.#handlerRunning) return;
    const heldMs = performance.now() - this.#admittedAt;
    this.#admittedAt = -1;
    this.limiter.release(heldMs);
  }
}

/**
 * The grpc-js server interceptor every call passes before its handler, on
 * every method the server hosts (reflection's and health's included):
 *
 * - A unary call that is not exempt needs a slot (see CallLimiter) once its
 *   request has arrived whole, before its handler runs; a refused call ends
 *   with RESOURCE_EXHAUSTED. Streaming calls do not count: they are
 *   long-lived (event streams, health watches, reflection), and a slot held
 *   for hours would shrink the limit for everything else; they are bounded
 *   per connection by MAX_CONCURRENT_STREAMS instead.
 * - Under admission control, every call with a single request message
 *   (unary and server-streaming, exempt ones such as health's included) is
 *   kept among the requests arriving until that request has arrived whole,
 *   and cut when it takes too long while too many are kept (see
 *   {@link ArrivingCall}). A client-streaming or bidi call's request stays
 *   open for as long as the call does, so it is not.
 * - A call with a single request message that sends none, or more than one,
 *   gets INVALID_ARGUMENT naming the method (grpc-js would answer
 *   UNIMPLEMENTED, as for a method that does not exist).
 * - A method with a streaming request (client-streaming and bidi: server
 *   reflection's, from @grpc/proto-loader, and those hostService hosts) gets
 *   a request message that could not be decoded (an
 *   {@link UndecodableRequest}) answered with INVALID_ARGUMENT, before the
 *   handler reads it; hostService answers it itself for the unary and
 *   server-streaming methods it hosts.
 */
export function callGate(options: CallGateOptions): ServerInterceptor {
  const { limiter, exempt, onRefused, onCut } = options;
  const arrivals = limiter && new RequestArrivals<ArrivingCall>(maxRequestsArriving(limiter.settings));
  return (method, call) => {
    if (method.requestStream) return undecodableRefused(method.path, call, onRefused);
    // Typed as the class, but grpc-js only uses the interface of what an interceptor returns.
    if (arrivals === undefined || method.responseStream || exempt?.(method.path))
      return new ArrivingCall(call, method.path, arrivals, onCut, onRefused) as unknown as ServerInterceptingCall;
    return new GatedCall(call, method.path, arrivals, onCut, onRefused, limiter!) as unknown as ServerInterceptingCall;
  };
}

function undecodableRefused(
  path: string,
  call: ServerInterceptingCallInterface,
  onRefused: CallGateOptions["onRefused"],
) {
  const arrivedAt = performance.now();
  const listener: ServerListener = {
    onReceiveMessage(message, next) {
      if (!(message instanceof UndecodableRequest)) return next(message);
      onRefused?.(path, GrpcStatus.INVALID_ARGUMENT, message.details, performance.now() - arrivedAt);
      call.sendStatus({ code: GrpcStatus.INVALID_ARGUMENT, details: message.details, metadata: new Metadata() });
    },
  };
  return new ServerInterceptingCall(call, { start: (next) => next(listener) });
}
