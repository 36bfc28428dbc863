import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Histogram } from "prom-client";
import { callsRefused, rpcLabelsOf, rpcServerDuration } from "./service-metrics.js";

type Observer = Histogram.Internal<string>;

/**
 * A histogram's labelled children, per method and status code: prom-client
 * otherwise hashes the label set on every observation, and these are
 * recorded on every call.
 */
export class ObserverCache {
  readonly #byMethod = new WeakMap<DescMethod, Observer[]>();

  constructor(
    readonly histogram: Histogram<string>,
    readonly extraLabels: Record<string, string> = {},
  ) {}

  observe(method: DescMethod, code: number, seconds: number): void {
    let byCode = this.#byMethod.get(method);
    if (byCode === undefined) {
      byCode = [];
      this.#byMethod.set(method, byCode);
    }
    let observer = byCode[code];
    if (observer === undefined) {
      observer = this.histogram.labels({
        rpc_service: method.parent.typeName,
        rpc_method: method.name,
        rpc_grpc_status_code: String(code),
        ...this.extraLabels,
      });
      byCode[code] = observer;
    }
    observer.observe(seconds);
  }
}

/** gRPC's OK, which Connect's Code leaves out. */
export const okCode = 0;

const serverDurations = new ObserverCache(rpcServerDuration);

/**
 * The Connect interceptor that times every call a server's handlers answer
 * (rpc_server_duration_seconds), from when the call reached the interceptors
 * to its status; a server-streaming call to its last message. It never reads
 * the request's signal, which the chassis makes only for those who do.
 */
export const serverMetricsInterceptor: Interceptor = (next) => async (req) => {
  const started = performance.now();
  let response: Awaited<ReturnType<typeof next>>;
  try {
    response = await next(req);
  } catch (error) {
    serverDurations.observe(req.method, ConnectError.from(error).code, (performance.now() - started) / 1000);
    throw error;
  }
  if (!response.stream) {
    serverDurations.observe(req.method, okCode, (performance.now() - started) / 1000);
    return response;
  }
  // Replaced in place: the chassis tells its own response from one an interceptor made by identity.
  (response as { message: AsyncIterable<unknown> }).message = timedStream(response.message, (code) =>
    serverDurations.observe(req.method, code, (performance.now() - started) / 1000),
  );
  return response;
};

async function* timedStream<T>(messages: AsyncIterable<T>, done: (code: number) => void): AsyncIterable<T> {
  // A reader that stops early (the call was cancelled or cut off) ends the stream without an error.
  let code: number = Code.Canceled;
  try {
    yield* messages;
    code = okCode;
  } catch (error) {
    code = ConnectError.from(error).code;
    throw error;
  } finally {
    done(code);
  }
}

/**
 * Records a call the server ended before any handler or interceptor saw it
 * (admission control, an undecodable request): counted as refused, and
 * timed like every other call so that error ratios include it.
 */
export function recordRefusedCall(path: string, code: number, afterMs: number): void {
  const labels = { ...rpcLabelsOf(path), rpc_grpc_status_code: String(code) };
  callsRefused.inc(labels);
  rpcServerDuration.observe(labels, afterMs / 1000);
}
