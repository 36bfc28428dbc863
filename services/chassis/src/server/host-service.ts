import { once } from "node:events";
import {
  Metadata,
  status as GrpcStatus,
  type sendUnaryData,
  type Server,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
} from "@grpc/grpc-js";
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethod,
  type DescService,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type HandlerContext,
  type Interceptor,
  type ServiceImpl,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { applyInterceptors, headersToMetadata, metadataToHeaders, methodPath } from "@shopmesh/sdk/internal";
import { CallPeerIdentity, peerIdentityKey, type CallAuthContext } from "../auth/peer-identity.js";
import { statusName, toCallStatus, type CallStatus } from "./call-status.js";
import { admittedCall, type AdmittedCall } from "./call-gate.js";
import { deadlineMs } from "./deadline-ms.js";
import { safeDeserializer, UndecodableRequest } from "./request-decoding.js";

/** What the adapter reports when a call ends. */
export interface CallRecord {
  /** Full method path, e.g. "/shopmesh.users.v1.UsersService/GetUser". */
  method: string;
  /** Canonical status code name, e.g. "OK". */
  code: string;
  durationMs: number;
  /** Time the caller allowed when the call arrived (its deadline), if it set one. */
  timeoutMs?: number;
  /** The original error behind an INTERNAL status. */
  internal?: unknown;
}

const neverStopping = new AbortController().signal;
const serverStoppingKey = createContextKey<AbortSignal>(neverStopping, { description: "server stopping" });
const admissionWaitKey = createContextKey<number>(0, { description: "time waited for admission" });

/** Aborted when the server hosting this streaming call starts to stop (never, outside such a server). */
export function serverStopping(context: Pick<HandlerContext, "values">): AbortSignal {
  return context.values.get(serverStoppingKey);
}

/**
 * How long this call waited for a slot before its handler ran (0 when one
 * was free, or outside admission control). A handler that gives a call
 * without a deadline a default budget takes this off, so that the budget
 * counts from the call's arrival, as a deadline does.
 */
export function admissionWaitMs(context: Pick<HandlerContext, "values">): number {
  return context.values.get(admissionWaitKey);
}

/**
 * The unary calls of a server still waiting for their answer, so that a
 * server whose shutdown grace period is over can answer them itself instead
 * of resetting their streams (which clients report as INTERNAL).
 */
export class RunningCalls {
  readonly #calls = new Set<(reason: ConnectError) => void>();

  add(cut: (reason: ConnectError) => void): void {
    this.#calls.add(cut);
  }

  delete(cut: (reason: ConnectError) => void): void {
    this.#calls.delete(cut);
  }

  /** Answers every call still running with `reason`; what their handlers return later is dropped. */
  cutAll(reason: ConnectError): number {
    const calls = [...this.#calls];
    for (const cut of calls) cut(reason);
    return calls.length;
  }
}

/** Options for {@link hostService}. */
export interface HostOptions {
  /** Connect interceptors, run in order, outermost first, around every call. */
  interceptors?: Interceptor[];
  /**
   * Aborted when the server starts to stop. Server-streaming handlers find it
   * with {@link serverStopping}, so that a stream that would otherwise never
   * end (an event stream following new commits) can end and let the server
   * drain; finite streams just finish.
   */
  stopping?: AbortSignal;
  /** Called once per call when its status is known. */
  onCallEnd?: (record: CallRecord) => void;
  /** Where unary calls are kept while they run, so that a stopping server can answer them (see {@link RunningCalls}). */
  running?: RunningCalls;
}

type AnyFn = (req: UnaryRequest | StreamRequest) => Promise<UnaryResponse | StreamResponse>;
type AnyImpl = (request: unknown, context: HandlerContext) => unknown;

/**
 * Hosts a Connect service implementation on a grpc-js server. Handlers are
 * plain objects typed by the generated service descriptor, exactly as with
 * Connect's own router, so the same implementation runs in memory in unit
 * tests (createRouterTransport) and on grpc-js in production.
 *
 * The adapter gives each call a HandlerContext: the gRPC deadline becomes
 * `timeoutMs()` and aborts `signal` when it passes, client cancellation aborts
 * `signal`, request metadata becomes `requestHeader`, and `responseHeader` and
 * `responseTrailer` are sent back. A thrown ConnectError ends the call with its
 * code and message; any other error ends it with INTERNAL. A request that
 * cannot be decoded reaches the handler as an UndecodableRequest from the
 * deserializer, and is answered with INVALID_ARGUMENT without running the
 * implementation.
 *
 * Unary and server-streaming methods are supported.
 */
export function hostService<S extends DescService>(
  server: Pick<Server, "addService">,
  service: S,
  impl: ServiceImpl<S>,
  options: HostOptions = {},
): void {
  const definition: Record<string, ServiceDefinition[string]> = {};
  const handlers: Record<string, unknown> = {};
  const implementations = impl as unknown as Record<string, AnyImpl>;
  for (const method of service.methods) {
    const fn = implementations[method.localName];
    if (typeof fn !== "function") {
      throw new Error(`${service.typeName}.${method.name} has no implementation`);
    }
    if (method.methodKind !== "unary" && method.methodKind !== "server_streaming") {
      throw new Error(`${service.typeName}.${method.name}: ${method.methodKind} methods are not supported`);
    }
    const unary = method.methodKind === "unary";
    // grpc-js finds each handler under the same key as its definition.
    definition[method.localName] = {
      path: methodPath(method),
      originalName: method.localName,
      requestStream: false,
      responseStream: !unary,
      requestSerialize: (value: MessageShape<DescMessage>) => asBuffer(toBinary(method.input, value)),
      requestDeserialize: safeDeserializer(method.input.typeName, (bytes: Buffer) => fromBinary(method.input, bytes)),
      responseSerialize: (value: MessageShape<DescMessage>) => asBuffer(toBinary(method.output, value)),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
    };
    const bound = fn.bind(impl);
    handlers[method.localName] = unary
      ? unaryHandler(method, bound, options)
      : serverStreamingHandler(method, bound, options);
  }
  server.addService(definition, handlers as never);
}

/**
 * Why a finished call's signal is aborted (Connect's contract: the signal also
 * fires when the call completes). One shared reason: aborting without one
 * builds a DOMException with a stack trace on every call.
 */
const callFinished = new ConnectError("the call finished", Code.Canceled);

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

interface CallLike {
  metadata: Metadata;
  getAuthContext?(): CallAuthContext | null;
  getDeadline(): Date | number;
  on(event: "cancelled", listener: () => void): unknown;
}

/**
 * A client cancels a call when its own deadline passes, and that cancellation
 * can reach the server before the server's copy of the deadline has passed:
 * the server anchors its copy when grpc-js reads the request's grpc-timeout,
 * which lags the client's clock by the transit time plus both event loops'
 * delays (a few ms when idle, tens of ms on a loaded host). A cancellation
 * that close to the deadline is the deadline: within a fifth of the timeout,
 * but at least 25 ms and at most 1 s.
 */
function deadlineSlackMs(timeoutMs: number): number {
  return Math.min(1_000, Math.max(25, timeoutMs / 5));
}

/**
 * The HandlerContext of one call. What most handlers never touch is made only
 * when first asked for: the AbortController behind `signal` (with the timer
 * that aborts it at the deadline) and the response header and trailer. A
 * plain read then costs no controller, no timer and no abort event; the
 * bench's profile of products.GetProduct showed those as about a tenth of
 * the server's time per call. The deadline itself is grpc-js's to enforce:
 * it ends the call with DEADLINE_EXCEEDED whether or not a signal exists.
 */
class CallContext implements HandlerContext {
  readonly service: DescService;
  readonly protocolName = "grpc";
  readonly requestMethod = "POST";
  readonly requestHeader: Headers;
  readonly values = createContextValues();
  readonly #deadlineMs: number;
  /** How close to the deadline a client's cancellation counts as the deadline (see deadlineSlackMs). */
  readonly #slackMs: number;
  #controller: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Why the call ended (deadline, cancellation, or finished), once it has. */
  #endedBy: unknown;
  #ended = false;
  #responseHeader: Headers | undefined;
  #responseTrailer: Headers | undefined;

  constructor(
    readonly method: DescMethod,
    /** The method's path, "/package.Service/Method", made once per method. */
    readonly url: string,
    call: CallLike,
    admitted?: AdmittedCall,
  ) {
    this.service = method.parent;
    if (admitted !== undefined && admitted.waitedMs > 0) this.values.set(admissionWaitKey, admitted.waitedMs);
    this.requestHeader = metadataToHeaders(call.metadata);
    this.values.set(peerIdentityKey, new CallPeerIdentity(call));
    this.#deadlineMs = deadlineMs(call.getDeadline());
    // From the whole timeout the call arrived with, not from what is left of it.
    this.#slackMs = this.hasDeadline ? deadlineSlackMs(this.#deadlineMs - Date.now()) : 0;
    call.on("cancelled", () => this.#cancelled());
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      const controller = new AbortController();
      this.#controller = controller;
      if (this.#ended) {
        controller.abort(this.#endedBy);
      } else if (this.hasDeadline) {
        const remaining = this.#deadlineMs - Date.now();
        if (remaining <= 0) this.end(deadlinePassed());
        else this.#timer = setTimeout(() => this.end(deadlinePassed()), remaining);
      }
    }
    return this.#controller.signal;
  }

  get hasDeadline(): boolean {
    return Number.isFinite(this.#deadlineMs);
  }

  readonly timeoutMs = (): number | undefined => (this.hasDeadline ? this.#deadlineMs - Date.now() : undefined);

  get responseHeader(): Headers {
    this.#responseHeader ??= new Headers();
    return this.#responseHeader;
  }

  get responseTrailer(): Headers {
    this.#responseTrailer ??= new Headers();
    return this.#responseTrailer;
  }

  /** Response headers as grpc-js metadata, or undefined when the handler set none. */
  responseMetadata(which: "header" | "trailer"): Metadata | undefined {
    const headers = which === "header" ? this.#responseHeader : this.#responseTrailer;
    return headers === undefined ? undefined : headersToMetadata(headers);
  }

  /** The reason the call was aborted (deadline, cancellation), if it was. */
  get abortReason(): unknown {
    return this.#endedBy;
  }

  /** Ends the call's signal with `reason`; later calls change nothing. */
  end(reason: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#endedBy = reason;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#controller?.abort(reason);
  }

  #cancelled(): void {
    if (this.#ended) return;
    // See deadlineSlackMs: a cancellation that close to the deadline is the deadline.
    const nearDeadline = this.hasDeadline && Date.now() >= this.#deadlineMs - this.#slackMs;
    this.end(nearDeadline ? deadlinePassed() : new ConnectError("the client cancelled the call", Code.Canceled));
  }
}

const deadlinePassed = () => new ConnectError("the deadline passed", Code.DeadlineExceeded);

/**
 * The context a handler sees: the call's own, unless an interceptor passed on
 * a request with other headers, signal or context values.
 */
function withRequest(
  context: CallContext,
  req: UnaryRequest | StreamRequest,
  original: UnaryRequest | StreamRequest,
): HandlerContext {
  if (req === original) return context;
  return {
    service: context.service,
    method: context.method,
    protocolName: context.protocolName,
    requestMethod: context.requestMethod,
    url: context.url,
    timeoutMs: context.timeoutMs,
    responseHeader: context.responseHeader,
    responseTrailer: context.responseTrailer,
    requestHeader: req.header,
    signal: req.signal,
    values: req.contextValues,
  };
}

function report(
  options: HostOptions,
  context: CallContext,
  started: number,
  timeoutMs: number | undefined,
  status: Pick<CallStatus, "code" | "internal">,
) {
  options.onCallEnd?.({
    method: context.url,
    code: statusName(status.code),
    durationMs: performance.now() - started,
    timeoutMs,
    internal: status.internal,
  });
}

function reportUndecodable(options: HostOptions, url: string, started: number) {
  options.onCallEnd?.({
    method: url,
    code: statusName(GrpcStatus.INVALID_ARGUMENT),
    durationMs: performance.now() - started,
  });
}

/** The request the interceptors see, its signal made only if someone reads it. */
function requestFor(context: CallContext, stream: boolean, message: unknown): UnaryRequest | StreamRequest {
  return {
    stream,
    service: context.service,
    method: context.method,
    requestMethod: "POST",
    url: context.url,
    get signal() {
      return context.signal;
    },
    header: context.requestHeader,
    contextValues: context.values,
    message,
  } as UnaryRequest | StreamRequest;
}

/** The response a handler's output becomes, its headers made only if someone reads them. */
function responseFor(context: CallContext, stream: boolean, message: unknown): UnaryResponse | StreamResponse {
  return {
    stream,
    service: context.service,
    method: context.method,
    get header() {
      return context.responseHeader;
    },
    get trailer() {
      return context.responseTrailer;
    },
    message,
  } as UnaryResponse | StreamResponse;
}

/**
 * Response header and trailer of a finished call as grpc-js metadata: the
 * context's own (undefined when the handler set none), or the headers of a
 * response an interceptor put in its place.
 */
function responseMetadata(context: CallContext, response: UnaryResponse | StreamResponse, own: object) {
  if (response === own)
    return { header: context.responseMetadata("header"), trailer: context.responseMetadata("trailer") };
  return { header: headersToMetadata(response.header), trailer: headersToMetadata(response.trailer) };
}

function hasEntries(metadata: Metadata | undefined): metadata is Metadata {
  return metadata !== undefined && Object.keys(metadata.getMap()).length > 0;
}

function unaryHandler(method: DescMethod, impl: AnyImpl, options: HostOptions) {
  const url = methodPath(method);
  return (
    call: ServerUnaryCall<MessageShape<DescMessage>, MessageShape<DescMessage>>,
    callback: sendUnaryData<MessageShape<DescMessage>>,
  ) => {
    const started = performance.now();
    if (call.request instanceof UndecodableRequest) {
      callback({ code: GrpcStatus.INVALID_ARGUMENT, details: call.request.details, metadata: new Metadata() });
      reportUndecodable(options, url, started);
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
      report(options, context, started, timeoutMs, status);
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
        callback(null, response.message as MessageShape<DescMessage>, trailer);
        context.end(callFinished);
        report(options, context, started, timeoutMs, { code: GrpcStatus.OK });
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
        report(options, context, started, timeoutMs, status);
      },
    );
  };
}

function serverStreamingHandler(method: DescMethod, impl: AnyImpl, options: HostOptions) {
  const url = methodPath(method);
  return (call: ServerWritableStream<MessageShape<DescMessage>, MessageShape<DescMessage>>) => {
    const started = performance.now();
    if (call.request instanceof UndecodableRequest) {
      call.emit("error", {
        code: GrpcStatus.INVALID_ARGUMENT,
        details: call.request.details,
        metadata: new Metadata(),
      });
      reportUndecodable(options, url, started);
      return;
    }
    const context = new CallContext(method, url, call);
    if (options.stopping) context.values.set(serverStoppingKey, options.stopping);
    const timeoutMs = context.timeoutMs();
    const request = requestFor(context, true, single(call.request));
    let own: StreamResponse | undefined;
    const innermost: AnyFn = async (req) => {
      let input: unknown;
      for await (const message of req.message as AsyncIterable<unknown>) input = message;
      const output = impl(input, withRequest(context, req, request)) as AsyncIterable<unknown>;
      own = responseFor(context, true, output) as StreamResponse;
      return own;
    };
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
      const headerOf = () => responseMetadata(context, shown, own ?? {}).header;
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
      call.end(responseMetadata(context, shown, own ?? {}).trailer ?? new Metadata());
    };
    run().then(
      () => {
        context.end(callFinished);
        report(options, context, started, timeoutMs, { code: GrpcStatus.OK });
      },
      (error: unknown) => {
        // The headers of the response the interceptors returned, if the call got that far.
        const { header, trailer } = response
          ? responseMetadata(context, response, own ?? {})
          : { header: context.responseMetadata("header"), trailer: context.responseMetadata("trailer") };
        const status = toCallStatus(error, context.abortReason, trailer);
        if (!headerSent && header !== undefined) mergeMetadata(status.metadata, header);
        call.emit("error", { code: status.code, details: status.details, metadata: status.metadata });
        context.end(callFinished);
        report(options, context, started, timeoutMs, status);
      },
    );
  };
}

function mergeMetadata(target: Metadata, source: Metadata): void {
  for (const [key, values] of Object.entries(source.toJSON())) for (const value of values) target.add(key, value);
}

async function* single<T>(message: T): AsyncIterable<T> {
  yield message;
}
