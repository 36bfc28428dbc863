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
import { applyInterceptors, headersToMetadata, metadataToHeaders } from "@shopmesh/sdk";
import { statusName, toCallStatus, type CallStatus } from "./call-status.js";

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

/** Aborted when the server hosting this streaming call starts to stop (never, outside such a server). */
export function serverStopping(context: Pick<HandlerContext, "values">): AbortSignal {
  return context.values.get(serverStoppingKey);
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
 * code and message; any other error ends it with INTERNAL.
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
      path: `/${service.typeName}/${method.name}`,
      originalName: method.localName,
      requestStream: false,
      responseStream: !unary,
      requestSerialize: (value: MessageShape<DescMessage>) => asBuffer(toBinary(method.input, value)),
      requestDeserialize: (bytes: Buffer) => fromBinary(method.input, bytes),
      responseSerialize: (value: MessageShape<DescMessage>) => asBuffer(toBinary(method.output, value)),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
    };
    const bound = fn.bind(impl);
    handlers[method.localName] = unary ? unaryHandler(method, bound, options) : serverStreamingHandler(method, bound, options);
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

/** A HandlerContext plus the adapter's way to end it. */
type CallContext = HandlerContext & { abort(reason: unknown): void };

/**
 * Builds the handler's context with one AbortController and, only when the
 * caller set a deadline, one timer. (Connect's createHandlerContext links two
 * controllers per call, which the bench showed as a noticeable share of a
 * cheap read.)
 */
function contextFor(method: DescMethod, call: CallLike): CallContext {
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  const hasDeadline = Number.isFinite(deadlineMs);
  const controller = new AbortController();
  const abort = (reason: unknown) => {
    if (timer !== undefined) clearTimeout(timer);
    if (!controller.signal.aborted) controller.abort(reason);
  };
  let timer: NodeJS.Timeout | undefined;
  if (hasDeadline) {
    const remaining = deadlineMs - Date.now();
    if (remaining <= 0) controller.abort(new ConnectError("the deadline passed", Code.DeadlineExceeded));
    else timer = setTimeout(() => abort(new ConnectError("the deadline passed", Code.DeadlineExceeded)), remaining);
  }
  const slackMs = hasDeadline ? deadlineSlackMs(deadlineMs - Date.now()) : 0;
  call.on("cancelled", () => {
    if (controller.signal.aborted) return;
    abort(
      hasDeadline && Date.now() >= deadlineMs - slackMs
        ? new ConnectError("the deadline passed", Code.DeadlineExceeded)
        : new ConnectError("the client cancelled the call", Code.Canceled),
    );
  });
  return {
    service: method.parent,
    method,
    protocolName: "grpc",
    requestMethod: "POST",
    url: `/${method.parent.typeName}/${method.name}`,
    signal: controller.signal,
    timeoutMs: hasDeadline ? () => deadlineMs - Date.now() : () => undefined,
    requestHeader: metadataToHeaders(call.metadata),
    responseHeader: new Headers(),
    responseTrailer: new Headers(),
    values: createContextValues(),
    abort,
  };
}

function withRequest(context: HandlerContext, req: UnaryRequest | StreamRequest): HandlerContext {
  if (req.header === context.requestHeader && req.signal === context.signal && req.contextValues === context.values) {
    return context;
  }
  return { ...context, requestHeader: req.header, signal: req.signal, values: req.contextValues };
}

function report(
  options: HostOptions,
  method: DescMethod,
  started: number,
  timeoutMs: number | undefined,
  status: Pick<CallStatus, "code" | "internal">,
) {
  options.onCallEnd?.({
    method: `/${method.parent.typeName}/${method.name}`,
    code: statusName(status.code),
    durationMs: performance.now() - started,
    timeoutMs,
    internal: status.internal,
  });
}

function unaryHandler(method: DescMethod, impl: AnyImpl, options: HostOptions) {
  return (call: ServerUnaryCall<MessageShape<DescMessage>, MessageShape<DescMessage>>, callback: sendUnaryData<MessageShape<DescMessage>>) => {
    const started = performance.now();
    const context = contextFor(method, call);
    const timeoutMs = context.timeoutMs();
    const innermost: AnyFn = async (req) => {
      const output = await impl(req.message, withRequest(context, req));
      return {
        stream: false,
        service: method.parent,
        method,
        header: context.responseHeader,
        trailer: context.responseTrailer,
        message: create(method.output, output as never),
      } as UnaryResponse;
    };
    const request = {
      stream: false,
      service: method.parent,
      method,
      requestMethod: "POST",
      url: context.url,
      signal: context.signal,
      header: context.requestHeader,
      contextValues: context.values,
      message: call.request,
    } as UnaryRequest;
    applyInterceptors(innermost, options.interceptors)(request).then(
      (response) => {
        const header = headersToMetadata(response.header);
        if (Object.keys(header.getMap()).length > 0) call.sendMetadata(header);
        callback(null, response.message as MessageShape<DescMessage>, headersToMetadata(response.trailer));
        context.abort(callFinished);
        report(options, method, started, timeoutMs, { code: GrpcStatus.OK });
      },
      (error: unknown) => {
        const status = toCallStatus(error, context.signal, context.responseTrailer);
        const header = headersToMetadata(context.responseHeader);
        if (Object.keys(header.getMap()).length > 0) call.sendMetadata(header);
        callback({ code: status.code, details: status.details, metadata: status.metadata });
        context.abort(callFinished);
        report(options, method, started, timeoutMs, status);
      },
    );
  };
}

function serverStreamingHandler(method: DescMethod, impl: AnyImpl, options: HostOptions) {
  return (call: ServerWritableStream<MessageShape<DescMessage>, MessageShape<DescMessage>>) => {
    const started = performance.now();
    const context = contextFor(method, call);
    if (options.stopping) context.values.set(serverStoppingKey, options.stopping);
    const timeoutMs = context.timeoutMs();
    const innermost: AnyFn = async (req) => {
      let input: unknown;
      for await (const message of req.message as AsyncIterable<unknown>) input = message;
      const output = impl(input, withRequest(context, req)) as AsyncIterable<unknown>;
      return {
        stream: true,
        service: method.parent,
        method,
        header: context.responseHeader,
        trailer: context.responseTrailer,
        message: output,
      } as StreamResponse;
    };
    const request = {
      stream: true,
      service: method.parent,
      method,
      requestMethod: "POST",
      url: context.url,
      signal: context.signal,
      header: context.requestHeader,
      contextValues: context.values,
      message: single(call.request),
    } as StreamRequest;
    let headerSent = false;
    const sendHeader = (headers: Headers) => {
      if (headerSent) return;
      headerSent = true;
      call.sendMetadata(headersToMetadata(headers));
    };
    const run = async () => {
      const response = await applyInterceptors(innermost, options.interceptors)(request);
      for await (const message of response.message as AsyncIterable<unknown>) {
        if (context.signal.aborted) break;
        sendHeader(response.header);
        if (!call.write(create(method.output, message as never))) {
          // Backpressure: wait until grpc-js has flushed, or the call ends.
          await once(call, "drain", { signal: context.signal }).catch(() => undefined);
        }
      }
      if (context.signal.aborted) throw context.signal.reason;
      sendHeader(response.header);
      call.end(headersToMetadata(response.trailer));
    };
    run().then(
      () => {
        context.abort(callFinished);
        report(options, method, started, timeoutMs, { code: GrpcStatus.OK });
      },
      (error: unknown) => {
        const status = toCallStatus(error, context.signal, context.responseTrailer);
        if (!headerSent) headersToMetadata(context.responseHeader, status.metadata);
        call.emit("error", { code: status.code, details: status.details, metadata: status.metadata });
        context.abort(callFinished);
        report(options, method, started, timeoutMs, status);
      },
    );
  };
}

async function* single<T>(message: T): AsyncIterable<T> {
  yield message;
}
