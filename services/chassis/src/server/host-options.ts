import { status as GrpcStatus } from "@grpc/grpc-js";
import type {
  ConnectError,
  ContextValues,
  HandlerContext,
  Interceptor,
  StreamRequest,
  StreamResponse,
  UnaryRequest,
  UnaryResponse,
} from "@connectrpc/connect";
import { context as otelContext, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { serverSpanKey } from "../tracing/server-tracing.js";
import { statusName, type CallStatus } from "./call-status.js";
import type { CallContext } from "./call-context.js";
import type { RefusalListener } from "./call-gate.js";

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

/**
 * The calls of a server still waiting for their single answer (unary and
 * client-streaming), so that a server whose shutdown grace period is over
 * can answer them itself instead of resetting their streams (which clients
 * report as INTERNAL).
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

/** Options for hostService. */
export interface HostOptions {
  /** Connect interceptors, run in order, outermost first, around every call. */
  interceptors?: Interceptor[];
  /**
   * Aborted when the server starts to stop. Streaming handlers find it with
   * serverStopping, so that a stream that would otherwise never end (an
   * event stream following new commits) can end and let the server drain;
   * finite streams just finish.
   */
  stopping?: AbortSignal;
  /** Called once per call when its status is known. */
  onCallEnd?: (record: CallRecord) => void;
  /** Told about each call whose request did not decode, answered INVALID_ARGUMENT before any interceptor saw it. */
  onRefused?: RefusalListener;
  /** Where single-answer calls are kept while they run, so that a stopping server can answer them (see {@link RunningCalls}). */
  running?: RunningCalls;
}

/** The innermost step of the interceptor chain: runs the implementation. */
export type AnyFn = (req: UnaryRequest | StreamRequest) => Promise<UnaryResponse | StreamResponse>;
/** A method of a Connect ServiceImpl, of any kind, bound to its object. */
export type AnyImpl = (request: unknown, context: HandlerContext) => unknown;

export function reportCall(
  options: HostOptions,
  context: CallContext,
  started: number,
  timeoutMs: number | undefined,
  status: Pick<CallStatus, "code" | "internal">,
): void {
  const onCallEnd = options.onCallEnd;
  if (onCallEnd === undefined) return;
  const record: CallRecord = {
    method: context.url,
    code: statusName(status.code),
    durationMs: performance.now() - started,
    timeoutMs,
    internal: status.internal,
  };
  callEnded(onCallEnd, record, context.values);
}

/**
 * Reports a call that ended. Its server span has ended by now and is no
 * longer the active one: made active again, the lines logged about the call
 * carry its ids. Without tracing there is no span and nothing more to do.
 */
export function callEnded(
  onCallEnd: (record: CallRecord) => void,
  record: CallRecord,
  values: Pick<ContextValues, "get">,
): void {
  const span = values.get(serverSpanKey);
  if (span === undefined) onCallEnd(record);
  else otelContext.with(trace.setSpan(ROOT_CONTEXT, span), onCallEnd, undefined, record);
}

export function reportUndecodable(options: HostOptions, url: string, started: number, details: string): void {
  const durationMs = performance.now() - started;
  options.onRefused?.(url, GrpcStatus.INVALID_ARGUMENT, details, durationMs);
  options.onCallEnd?.({ method: url, code: statusName(GrpcStatus.INVALID_ARGUMENT), durationMs });
}
