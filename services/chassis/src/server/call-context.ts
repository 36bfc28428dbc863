import type { Metadata } from "@grpc/grpc-js";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type HandlerContext,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { headersToMetadata, metadataToHeaders } from "@shopmesh/sdk/internal";
import { CallPeerIdentity, peerIdentityKey, type CallAuthContext } from "../auth/peer-identity.js";
import type { AdmittedCall } from "./call-gate.js";
import { deadlineMs } from "./deadline-ms.js";

const neverStopping = new AbortController().signal;
/** Where a streaming call finds the signal of its server's stop (see {@link serverStopping}). */
export const serverStoppingKey = createContextKey<AbortSignal>(neverStopping, { description: "server stopping" });
/** Where a call's handler finds how long it waited for admission (see {@link admissionWaitMs}); @internal */
export const admissionWaitKey = createContextKey<number>(0, { description: "time waited for admission" });

/**
 * The IP address of the client that made this call, as the TCP connection
 * says ("127.0.0.1", "::1"), or undefined when unknown (see PeerIdentity).
 */
export function peerAddress(context: Pick<HandlerContext, "values">): string | undefined {
  return context.values.get(peerIdentityKey).address;
}

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
 * Why a finished call's signal is aborted (Connect's contract: the signal also
 * fires when the call completes). One shared reason: aborting without one
 * builds a DOMException with a stack trace on every call.
 */
export const callFinished = new ConnectError("the call finished", Code.Canceled);

/** What every grpc-js server call object offers, whatever its kind. */
export interface CallLike {
  metadata: Metadata;
  getPeer?(): string;
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
 *
 * @internal
 */
export function deadlineSlackMs(timeoutMs: number): number {
  return Math.min(1_000, Math.max(25, timeoutMs / 5));
}

/** Why a call whose deadline passed ends. */
export const deadlinePassed = (): ConnectError => new ConnectError("the deadline passed", Code.DeadlineExceeded);

/**
 * The HandlerContext of one call, of any kind. What most handlers never touch
 * is made only when first asked for: the AbortController behind `signal`
 * (with the timer that aborts it at the deadline) and the response header and
 * trailer. A plain read then costs no controller, no timer and no abort
 * event, which are a noticeable share of a short call's server time
 * (docs/performance-notes.md). The deadline itself is grpc-js's to
 * enforce: it ends the call with DEADLINE_EXCEEDED whether or not a signal
 * exists.
 */
export class CallContext implements HandlerContext {
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
    // Like the address, the certificate is read only if an interceptor or handler asks who the peer is.
    this.values.set(peerIdentityKey, new CallPeerIdentity(call));
    this.requestHeader = metadataToHeaders(call.metadata);
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

/**
 * The context a handler sees: the call's own, unless an interceptor passed on
 * a request with other headers, signal or context values.
 */
export function withRequest(
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

/** The request the interceptors see, its signal made only if someone reads it. */
export function requestFor(context: CallContext, stream: boolean, message: unknown): UnaryRequest | StreamRequest {
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
export function responseFor(context: CallContext, stream: boolean, message: unknown): UnaryResponse | StreamResponse {
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
export function responseMetadata(
  context: CallContext,
  response: UnaryResponse | StreamResponse,
  own: object,
): { header: Metadata | undefined; trailer: Metadata | undefined } {
  if (response === own)
    return { header: context.responseMetadata("header"), trailer: context.responseMetadata("trailer") };
  return { header: headersToMetadata(response.header), trailer: headersToMetadata(response.trailer) };
}

export function hasEntries(metadata: Metadata | undefined): metadata is Metadata {
  return metadata !== undefined && Object.keys(metadata.getMap()).length > 0;
}

export function mergeMetadata(target: Metadata, source: Metadata): void {
  for (const [key, values] of Object.entries(source.toJSON())) for (const value of values) target.add(key, value);
}
