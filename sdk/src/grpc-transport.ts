import {
  Client as GrpcClient,
  credentials as grpcCredentials,
  type Metadata,
  type CallOptions as GrpcCallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientDuplexStream,
  type ClientReadableStream,
  type ClientWritableStream,
  type ServiceError,
} from "@grpc/grpc-js";
import {
  create,
  fromBinary,
  isMessage,
  type DescMessage,
  type DescMethodStreaming,
  type DescMethodUnary,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  type Interceptor,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { createMethodUrl, runStreamingCall } from "@connectrpc/connect/protocol";
import { toConnectError } from "./grpc-error.js";
import { applyInterceptors } from "./interceptors.js";
import { headersToMetadata, metadataToHeaders, type HeadersLike } from "./metadata.js";
import { encodeMessage } from "./message-buffer.js";
import { methodPath } from "./method-path.js";
import { attemptsBehind, backoffMs, retriesAfterHeaders, type RetryPlan } from "./retry-after-headers.js";
import { retryPushbackMs } from "./retry-pushback.js";
import { boundedTimeoutMs } from "./timeout-limit.js";

/** Options for {@link createGrpcTransport}. */
export interface GrpcTransportOptions {
  /**
   * Where the server is, as grpc-js understands it: `127.0.0.1:50051`,
   * `dns:///products.internal:50052` (resolves every address; combine with
   * `loadBalancing: "round_robin"`), or `unix:///path/to.sock`.
   */
  target: string;
  /** Channel credentials; plaintext (insecure) when omitted. */
  credentials?: ChannelCredentials;
  /** Connect interceptors, run in order, outermost first. */
  interceptors?: Interceptor[];
  /**
   * How calls spread over the resolved addresses: `pick_first` (the grpc-js
   * default) or `round_robin`, which keeps a connection to every address.
   */
  loadBalancing?: "pick_first" | "round_robin";
  /**
   * Keepalive pings: how often to ping an idle connection and how long to wait
   * for the answer before the connection is considered dead. Off when
   * omitted. Servers must allow the interval (grpc-js servers do not refuse
   * pings more often than every 5 minutes unless configured to).
   */
  keepalive?: { intervalMs: number; timeoutMs?: number; withoutCalls?: boolean };
  /**
   * Retries by grpc-js, following gRPC's retry design: a call that fails
   * with UNAVAILABLE (nothing was processed, or the connection broke) is
   * sent again, with jittered exponential backoff, within its deadline. Only
   * for the services (`shopmesh.userorders.v1.UserOrdersService`) or methods
   * (`shopmesh.userorders.v1.UserOrdersService/GetUserOrders`) named in
   * `names`, which must be safe to repeat. Off when omitted.
   *
   * gRPC's design stops retrying once the server's response headers have
   * arrived, so a server killed between its headers and its trailers would
   * fail the call. For a unary method whose contract marks it free of side
   * effects or idempotent, the SDK sends it again then as well, within the
   * same attempts, backoff and deadline.
   */
  retry?: RetryOptions;
  /** Further grpc-js channel options, applied last. */
  channelOptions?: ChannelOptions;
}

/** See {@link GrpcTransportOptions.retry}. */
export interface RetryOptions {
  /** Full service names, or `service/Method`. */
  names: string[];
  /** Attempts in all, the first included (default 3; grpc-js allows at most 5). */
  maxAttempts?: number;
  /** Backoff before the first retry (default 50 ms), doubling up to `maxBackoffMs` (default 1 s). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

/** A Connect transport backed by a grpc-js channel that can be closed. */
export interface GrpcTransport extends Transport {
  /** The target the channel connects to. */
  readonly target: string;
  /** Closes the channel. Calls in flight fail with CANCELLED or UNAVAILABLE. */
  close(): void;
}

type Serializer = (value: unknown) => Buffer;
type Deserializer = (bytes: Buffer) => unknown;

interface MethodCodec {
  path: string;
  url: string;
  serialize: Serializer;
  deserialize: Deserializer;
  /** Whether a call broken after its response headers may be sent again. */
  retriesAfterHeaders: boolean;
}

/** What one attempt of a unary call saw besides its outcome. */
interface UnaryAttempt {
  /** The response headers, once they arrived. */
  headers?: Metadata;
}

/**
 * Creates a Connect {@link Transport} that sends gRPC calls through one
 * grpc-js channel, so that `createClient(Service, transport)` gives Connect's
 * typed API with grpc-js underneath: its HTTP/2 client, keepalive, name
 * resolution and load balancing. Create one per target and reuse it.
 *
 * Deadlines (`timeoutMs`) travel as the gRPC deadline, an aborted `signal`
 * cancels the call, headers become metadata and back, and a failed call
 * rejects with a `ConnectError` carrying the gRPC status code, its message
 * and the trailers as `metadata`. A call whose connection was torn down
 * under it (the server's GOAWAY with an error code, a failed session)
 * rejects with UNAVAILABLE, not the INTERNAL grpc-js reports for it.
 */
export function createGrpcTransport(options: GrpcTransportOptions): GrpcTransport {
  const client = new GrpcClient(
    options.target,
    options.credentials ?? grpcCredentials.createInsecure(),
    channelOptionsFor(options),
  );
  const interceptors = options.interceptors ?? [];
  const retry = options.retry && parseRetry(options.retry);
  const baseUrl = `grpc://${options.target}`;
  const codecs = new WeakMap<object, MethodCodec>();

  function codecFor(method: DescMethodUnary | DescMethodStreaming): MethodCodec {
    let codec = codecs.get(method);
    if (!codec) {
      const { input, output } = method;
      codec = {
        path: methodPath(method),
        url: createMethodUrl(baseUrl, method),
        serialize: (value) => encodeMessage(input, value as MessageShape<DescMessage>),
        deserialize: (bytes) => fromBinary(output, bytes),
        retriesAfterHeaders: retry !== undefined && retriesAfterHeaders(method, retry),
      };
      codecs.set(method, codec);
    }
    return codec;
  }

  return {
    target: options.target,
    close() {
      client.close();
    },

    // Unary calls skip Connect's runUnaryCall: per call it creates two
    // AbortControllers, links them with listeners, and aborts one when the
    // call succeeds, which builds a DOMException with a stack trace and
    // dispatches an Event. That was most of the cost over grpc-js's own
    // client. Here grpc-js enforces the deadline, and a signal is created only
    // when interceptors need to see the deadline on req.signal.
    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      requestedTimeoutMs: number | undefined,
      header: HeadersLike,
      message: MessageInitShape<I>,
      contextValues = createContextValues(),
    ): Promise<UnaryResponse<I, O>> {
      const timeoutMs = boundedTimeoutMs(requestedTimeoutMs);
      const codec = codecFor(method);
      const sendOnce = (req: UnaryRequest<I, O>, options: GrpcCallOptions, attempt?: UnaryAttempt) =>
        new Promise<UnaryResponse<I, O>>((resolve, reject) => {
          if (req.signal.aborted) {
            reject(ConnectError.from(req.signal.reason, Code.Canceled));
            return;
          }
          // Response metadata becomes Headers only if someone reads it.
          let headerMetadata: Metadata | undefined;
          let trailerMetadata: Metadata | undefined;
          let responseHeader: Headers | undefined;
          let responseTrailer: Headers | undefined;
          const onAbort = () => call.cancel();
          const call = client.makeUnaryRequest(
            codec.path,
            codec.serialize,
            codec.deserialize,
            req.message,
            headersToMetadata(req.header),
            options,
            (error: ServiceError | null, value?: unknown) => {
              req.signal.removeEventListener("abort", onAbort);
              if (error) {
                // A cancellation we caused keeps the signal's reason (e.g. a
                // deadline an interceptor saw, or the caller's own error).
                reject(
                  req.signal.aborted ? ConnectError.from(req.signal.reason, Code.Canceled) : toConnectError(error),
                );
                return;
              }
              // grpc-js emits "status" right after this callback, before
              // anyone awaiting the promise runs, so the trailer is there
              // by the time it is read.
              resolve({
                stream: false,
                service: method.parent,
                method,
                get header() {
                  responseHeader ??= metadataToHeaders(headerMetadata);
                  return responseHeader;
                },
                get trailer() {
                  responseTrailer ??= metadataToHeaders(trailerMetadata);
                  return responseTrailer;
                },
                message: value as MessageShape<O>,
              });
            },
          );
          call.on("metadata", (metadata: Metadata) => {
            headerMetadata = metadata;
            if (attempt) attempt.headers = metadata;
          });
          call.on("status", (status: { metadata: Metadata }) => (trailerMetadata = status.metadata));
          // The shared never-aborting signal would collect a listener per call in flight.
          if (req.signal !== neverAborted) req.signal.addEventListener("abort", onAbort, { once: true });
        });
      // Sent once more, within the same deadline, when the connection broke after the response
      // headers: see GrpcTransportOptions.retry.
      const sendRetryingAfterHeaders = async (req: UnaryRequest<I, O>, plan: RetryPlan) => {
        const options = callOptions(timeoutMs);
        let attempts = 0;
        for (;;) {
          const attempt: UnaryAttempt = {};
          try {
            return await sendOnce(req, options, attempt);
          } catch (error) {
            if (!attempt.headers || !(error instanceof ConnectError) || error.code !== Code.Unavailable) throw error;
            attempts += attemptsBehind(attempt.headers);
            const pushback = error.metadata.get("grpc-retry-pushback-ms");
            // gRPC's retry design: a pushback that is not a whole number of ms means "do not retry".
            const wait = pushback === null ? backoffMs(plan, attempts) : retryPushbackMs(error);
            if (attempts >= plan.maxAttempts || wait === undefined) throw error;
            if (options.deadline !== undefined && Date.now() + wait >= Number(options.deadline)) throw error;
            try {
              await sleep(wait, undefined, { signal: req.signal });
            } catch {
              throw ConnectError.from(req.signal.reason, Code.Canceled);
            }
          }
        }
      };
      const innermost = (req: UnaryRequest<I, O>) =>
        retry !== undefined && codec.retriesAfterHeaders
          ? sendRetryingAfterHeaders(req, retry)
          : sendOnce(req, callOptions(timeoutMs));
      let requestSignal = signal ?? neverAborted;
      let timer: NodeJS.Timeout | undefined;
      if (interceptors.length > 0 && timeoutMs !== undefined) {
        // Interceptors see the deadline on req.signal, as with Connect's own transports.
        const controller = new AbortController();
        if (signal?.aborted) controller.abort(signal.reason);
        else signal?.addEventListener("abort", () => controller.abort(signal.reason), { once: true });
        timer = setTimeout(
          () => controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
          timeoutMs,
        );
        requestSignal = controller.signal;
      }
      const next = applyInterceptors(innermost, interceptors);
      const result = next({
        stream: false,
        service: method.parent,
        method,
        requestMethod: "POST",
        url: codec.url,
        header: new Headers(header),
        contextValues,
        signal: requestSignal,
        message: isMessage(message, method.input) ? message : create(method.input, message),
      });
      return timer === undefined ? result : result.finally(() => clearTimeout(timer));
    },

    stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      requestedTimeoutMs: number | undefined,
      header: HeadersLike,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues = createContextValues(),
    ) {
      const timeoutMs = boundedTimeoutMs(requestedTimeoutMs);
      const codec = codecFor(method);
      return runStreamingCall<I, O>({
        interceptors,
        signal,
        timeoutMs,
        req: {
          stream: true,
          service: method.parent,
          method,
          requestMethod: "POST",
          url: codec.url,
          header: new Headers(header),
          contextValues,
          message: input,
        },
        next: async (req) => {
          const metadata = headersToMetadata(req.header);
          const options = callOptions(timeoutMs);
          const outcome = new CallOutcome(req.signal);
          let call: ClientCall;
          let messages: AsyncIterable<MessageShape<O>>;
          switch (method.methodKind) {
            case "server_streaming": {
              const request = await singleMessage(req.message);
              const readable = client.makeServerStreamRequest(
                codec.path,
                codec.serialize,
                codec.deserialize,
                request,
                metadata,
                options,
              );
              call = readable;
              outcome.watch(readable);
              messages = readStream(readable, outcome);
              break;
            }
            case "client_streaming": {
              let settle: { resolve(value: unknown): void; reject(error: unknown): void } | undefined;
              const response = new Promise<unknown>((resolve, reject) => (settle = { resolve, reject }));
              // Read only through `messages`; this keeps an early failure from
              // being reported as unhandled before anyone reads.
              response.catch(() => {});
              const writable = client.makeClientStreamRequest(
                codec.path,
                codec.serialize,
                codec.deserialize,
                metadata,
                options,
                (error: ServiceError | null, value?: unknown) => {
                  if (error) {
                    outcome.fail(error);
                    settle?.reject(outcome.failure);
                  } else settle?.resolve(value);
                },
              );
              call = writable;
              outcome.watch(writable);
              messages = singleResponse(response as Promise<MessageShape<O>>, outcome);
              writeRequests(writable, req.message, outcome);
              break;
            }
            case "bidi_streaming": {
              const duplex = client.makeBidiStreamRequest(
                codec.path,
                codec.serialize,
                codec.deserialize,
                metadata,
                options,
              );
              call = duplex;
              outcome.watch(duplex);
              messages = readStream(duplex, outcome);
              writeRequests(duplex, req.message, outcome);
              break;
            }
          }
          const responseHeader = new Headers();
          const responseTrailer = new Headers();
          call.on("status", (status: { metadata: Metadata }) => metadataToHeaders(status.metadata, responseTrailer));
          // Wait for the response headers (or an early error) so that
          // interceptors and callers see them before the first message, as
          // with any Connect transport. The requests are being written
          // meanwhile: a server may answer only once it has read some.
          await new Promise<void>((resolve, reject) => {
            call.once("metadata", (metadata: Metadata) => {
              metadataToHeaders(metadata, responseHeader);
              resolve();
            });
            call.once("status", () => (outcome.failure ? reject(outcome.failure) : resolve()));
            call.once("error", () => reject(outcome.failure));
          });
          return {
            stream: true,
            service: method.parent,
            method,
            header: responseHeader,
            trailer: responseTrailer,
            message: messages,
          };
        },
      });
    },
  };
}

/** The signal of a call that nothing can cancel. */
const neverAborted = new AbortController().signal;

function channelOptionsFor(options: GrpcTransportOptions): ChannelOptions {
  const channel: ChannelOptions = {};
  const serviceConfig: Record<string, unknown> = {};
  if (options.loadBalancing) serviceConfig.loadBalancingConfig = [{ [options.loadBalancing]: {} }];
  if (options.retry) serviceConfig.methodConfig = [retryMethodConfig(options.retry)];
  if (Object.keys(serviceConfig).length > 0) channel["grpc.service_config"] = JSON.stringify(serviceConfig);
  if (options.keepalive) {
    channel["grpc.keepalive_time_ms"] = options.keepalive.intervalMs;
    channel["grpc.keepalive_timeout_ms"] = options.keepalive.timeoutMs ?? 20_000;
    channel["grpc.keepalive_permit_without_calls"] = options.keepalive.withoutCalls ? 1 : 0;
  }
  return { ...channel, ...options.channelOptions };
}

function parseRetry(retry: RetryOptions): RetryPlan {
  const maxAttempts = retry.maxAttempts ?? 3;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 2 || maxAttempts > 5)
    throw new RangeError(`retry.maxAttempts: ${maxAttempts} is not a whole number from 2 to 5`);
  if (retry.names.length === 0) throw new RangeError("retry.names: name at least one service or method");
  const names = retry.names.map((full) => {
    const [service, method, ...rest] = full.split("/");
    if (!service || rest.length > 0 || method === "")
      throw new RangeError(`retry.names: "${full}" is not a service name or service/Method`);
    return method === undefined ? { service } : { service, method };
  });
  return {
    names,
    maxAttempts,
    initialBackoffMs: retry.initialBackoffMs ?? 50,
    maxBackoffMs: retry.maxBackoffMs ?? 1000,
  };
}

function retryMethodConfig(retry: RetryOptions): Record<string, unknown> {
  const plan = parseRetry(retry);
  const seconds = (ms: number) => `${(ms / 1000).toFixed(3)}s`;
  return {
    name: plan.names,
    retryPolicy: {
      maxAttempts: plan.maxAttempts,
      initialBackoff: seconds(plan.initialBackoffMs),
      maxBackoff: seconds(plan.maxBackoffMs),
      backoffMultiplier: 2,
      retryableStatusCodes: ["UNAVAILABLE"],
    },
  };
}

function callOptions(timeoutMs: number | undefined): GrpcCallOptions {
  return timeoutMs === undefined ? {} : { deadline: Date.now() + Math.max(0, timeoutMs) };
}

async function singleMessage<T>(messages: AsyncIterable<T>): Promise<T> {
  let first: T | undefined;
  let count = 0;
  for await (const message of messages) {
    if (count++ === 0) first = message;
  }
  if (count !== 1) {
    throw new ConnectError(
      `server streaming calls take exactly one request message, got ${count}`,
      Code.InvalidArgument,
    );
  }
  return first as T;
}

/** What every kind of grpc-js streaming call is: an emitter that can be cancelled. */
type ClientCall = ClientReadableStream<unknown> | ClientWritableStream<unknown> | ClientDuplexStream<unknown, unknown>;

/**
 * How one streaming call ends, seen from both of its directions: the first
 * failure is kept (the caller's own cancellation or deadline keeps the
 * signal's reason, as with Connect's own transports), the call is cancelled
 * when the signal aborts, and the writer learns when to stop.
 */
class CallOutcome {
  failure: ConnectError | undefined;
  /** The server's status arrived: nothing more can be written. */
  finished = false;
  private call: ClientCall | undefined;
  private readonly onAbort = () => this.call?.cancel();
  private readonly waiters = new Set<() => void>();

  constructor(private readonly signal: AbortSignal) {}

  /** Cancels the call when the signal aborts, and notes when it ends. */
  watch(call: ClientCall): void {
    this.call = call;
    call.on("error", (error: unknown) => this.fail(error));
    call.on("status", () => this.finish());
    if (this.signal.aborted) call.cancel();
    else this.signal.addEventListener("abort", this.onAbort, { once: true });
  }

  fail(error: unknown): void {
    this.failure ??= this.signal.aborted
      ? ConnectError.from(this.signal.reason, Code.Canceled)
      : isServiceError(error)
        ? toConnectError(error)
        : ConnectError.from(error);
    this.finish();
  }

  /** Ends the call from this side: a request that could not be produced or sent. */
  abandon(error: unknown): void {
    this.fail(error);
    this.call?.cancel();
  }

  /** Resolves when the call ends, for a writer waiting for room to write. */
  ended(): Promise<void> {
    return this.finished ? Promise.resolve() : new Promise((resolve) => this.waiters.add(resolve));
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.signal.removeEventListener("abort", this.onAbort);
    for (const wake of this.waiters) wake();
    this.waiters.clear();
  }
}

/**
 * Writes the request messages to a grpc-js call as they come, then half-closes
 * it. It waits for 'drain' whenever write() says the stream's buffer is full,
 * so a fast producer is held back by HTTP/2 flow control instead of queueing
 * without bound. Runs beside the reading side; stops when the call ends.
 */
function writeRequests(
  call: ClientWritableStream<unknown>,
  requests: AsyncIterable<unknown>,
  outcome: CallOutcome,
): void {
  void (async () => {
    const iterator = requests[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await Promise.race([iterator.next(), outcome.ended().then(() => undefined)]);
        if (next === undefined || outcome.finished) {
          // The call ended first: the producer need not make more.
          void iterator.return?.()?.catch(() => {});
          return;
        }
        if (next.done) {
          call.end();
          return;
        }
        if (!call.write(next.value)) {
          await Promise.race([once(call, "drain"), outcome.ended()]);
        }
      }
    } catch (error) {
      outcome.abandon(error);
    }
  })();
}

/** The one response of a client-streaming call, as the stream of one message Connect expects. */
function singleResponse<T>(response: Promise<T>, outcome: CallOutcome): AsyncIterable<T> {
  return {
    async *[Symbol.asyncIterator]() {
      try {
        yield await response;
      } catch {
        throw outcome.failure;
      }
    },
  };
}

/**
 * Reads a grpc-js response stream as an async iterable. Listeners are attached
 * at once, so an error that arrives before the caller starts reading is kept,
 * not lost. At most `highWaterMark` messages wait in memory: beyond that the
 * stream is paused, which stops reading from the socket and lets HTTP/2 flow
 * control slow the server down.
 */
function readStream<T>(
  call: ClientReadableStream<unknown>,
  outcome: CallOutcome,
  highWaterMark = 16,
): AsyncIterable<T> {
  const queue: T[] = [];
  let failed = false;
  let ended = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  call.on("data", (message: unknown) => {
    queue.push(message as T);
    if (queue.length >= highWaterMark) call.pause();
    notify();
  });
  call.on("error", (error: unknown) => {
    outcome.fail(error);
    failed = true;
    notify();
  });
  call.on("end", () => {
    ended = true;
    notify();
  });
  return {
    async *[Symbol.asyncIterator]() {
      try {
        for (;;) {
          const next = queue.shift();
          if (next !== undefined) {
            if (queue.length < highWaterMark / 2 && call.isPaused()) call.resume();
            yield next;
            continue;
          }
          if (failed) throw outcome.failure;
          if (ended) return;
          await new Promise<void>((resolve) => (wake = resolve));
        }
      } finally {
        if (!ended && !failed) call.cancel();
      }
    },
  };
}

function isServiceError(error: unknown): error is ServiceError {
  // A ConnectError also has a numeric code and metadata, but its details are a list.
  return (
    error instanceof Error &&
    typeof (error as Partial<ServiceError>).code === "number" &&
    typeof (error as Partial<ServiceError>).details === "string" &&
    "metadata" in error
  );
}
