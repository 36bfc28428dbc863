import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createContextKey } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  endStreamFlag,
  endStreamFromJson,
  endStreamToJson,
  errorFromJsonBytes,
  errorToJsonBytes,
} from "@connectrpc/connect/protocol-connect";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { cannotDecodeMessage, oneMessageRefusal } from "./request-decoding.js";
import type { RefusalListener } from "./call-gate.js";

/** What connect's binary serialization puts before protobuf-es's own message. */
const parseBinaryPrefix = "parse binary: ";
/** What connect puts before its complaints about a request's messages (none, or one too many). */
const protocolErrorPrefix = "protocol error: ";
/** An envelope's header: one byte of flags, four of length. */
const envelopeHeaderBytes = 5;
/** The flag of an envelope whose payload is compressed. */
const compressedFlag = 0b01;

/**
 * Set by the HTTP call gate, the first interceptor, for every call it sees.
 * connect reads and decodes a unary request before any interceptor runs, so
 * a unary call that failed without it failed on its request.
 *
 * @internal
 */
export const reachedGateKey = createContextKey(false, { description: "the call reached the HTTP call gate" });

/** What connect wraps a plain Error in (the base64 decoder's, for a GET's message). */
const wrappedErrorMessage = "internal error";

/**
 * The INVALID_ARGUMENT to answer instead of `error`, when `error` is
 * connect's report of a request to `method` that it could not read: bytes
 * that do not decode ("parse binary: …"), a body it cannot decompress, a
 * GET whose message is not base64, all of which connect-node reports as
 * INTERNAL, its own failure; or a request of no message or more than one,
 * which it reports as UNIMPLEMENTED. Undefined for any other error. Only for
 * errors known to come from reading the request: connect's serialization
 * reports a response that does not decode the same way.
 */
export function asInvalidRequest(error: ConnectError, method: DescMethod): ConnectError | undefined {
  const message = error.rawMessage;
  const typeName = method.input.typeName;
  if (error.code === Code.Internal) {
    let details: string;
    if (message.startsWith(parseBinaryPrefix))
      details = cannotDecodeMessage(typeName, message.slice(parseBinaryPrefix.length));
    else if (message === wrappedErrorMessage)
      details = `request: cannot read ${typeName}: its bytes are not valid (a GET's message= must be base64url with base64=1)`;
    else details = `request: cannot read ${typeName}: ${message}`;
    return new ConnectError(details, Code.InvalidArgument);
  }
  if (error.code === Code.Unimplemented && message.startsWith(protocolErrorPrefix)) {
    const sent = message.includes("missing") ? "none" : "more than one";
    return new ConnectError(oneMessageRefusal(pathOf(method), sent), Code.InvalidArgument);
  }
  return undefined;
}

/** A method's path, as gRPC names it: `/pkg.Service/Method`. */
function pathOf(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/**
 * A server-streaming call's request messages, as connect reads them: an
 * error in reading them is the request's (see {@link asInvalidRequest}),
 * and there must be exactly one.
 *
 * @internal
 */
export async function* oneRequestMessage<T>(messages: AsyncIterable<T>, method: DescMethod): AsyncGenerator<T> {
  let count = 0;
  try {
    for await (const message of messages) {
      if (++count > 1) throw new ConnectError(oneMessageRefusal(pathOf(method), "more than one"), Code.InvalidArgument);
      yield message;
    }
  } catch (error) {
    throw (error instanceof ConnectError && asInvalidRequest(error, method)) || error;
  }
  if (count === 0) throw new ConnectError(oneMessageRefusal(pathOf(method), "none"), Code.InvalidArgument);
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/** An envelope with `flags` around `payload`. */
function envelope(flags: number, payload: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(envelopeHeaderBytes + payload.byteLength);
  bytes[0] = flags;
  new DataView(bytes.buffer).setUint32(1, payload.byteLength);
  bytes.set(payload, envelopeHeaderBytes);
  return bytes;
}

/**
 * The body with its first envelope given to `rewrite`, which returns the
 * envelope to send in its place, or undefined to keep it. Everything after
 * the first envelope passes as it comes.
 */
async function* rewritingFirstEnvelope(
  body: AsyncIterable<Uint8Array>,
  rewrite: (flags: number, payload: Uint8Array) => Uint8Array | undefined,
): AsyncGenerator<Uint8Array> {
  const chunks = body[Symbol.asyncIterator]();
  try {
    let head: Uint8Array = new Uint8Array(0);
    const length = () =>
      head.byteLength < envelopeHeaderBytes
        ? Number.POSITIVE_INFINITY
        : envelopeHeaderBytes + new DataView(head.buffer, head.byteOffset, head.byteLength).getUint32(1);
    while (head.byteLength < length()) {
      const next = await chunks.next();
      if (next.done === true) {
        if (head.byteLength > 0) yield head;
        return;
      }
      head = head.byteLength === 0 ? next.value : Buffer.concat([head, next.value]);
    }
    const first = head.subarray(0, length());
    yield rewrite(first[0]!, first.subarray(envelopeHeaderBytes)) ?? first;
    if (head.byteLength > first.byteLength) yield head.subarray(first.byteLength);
    for (let next = await chunks.next(); next.done !== true; next = await chunks.next()) yield next.value;
  } finally {
    // A client that went away stops this generator; the handler's stream must hear of it too.
    // Not awaited, as in untilStopped: nothing is pending in it here, but a failed return must not be left unhandled.
    chunks.return?.()?.catch(() => undefined);
  }
}

/** A Connect unary error answer, with its body read: rewritten, or as it was. */
async function connectUnary(
  response: UniversalServerResponse,
  method: DescMethod,
  refused: (answer: ConnectError) => void,
): Promise<UniversalServerResponse> {
  const bytes = await readAll(response.body!);
  const error = errorFromJsonBytes(bytes, undefined, new ConnectError("", Code.Unknown));
  const invalid = asInvalidRequest(error, method);
  refused(invalid ?? error);
  if (invalid === undefined)
    return {
      ...response,
      body: (async function* () {
        yield bytes;
      })(),
    };
  const body = errorToJsonBytes(invalid, undefined);
  const header = new Headers(response.header);
  header.set("content-length", String(body.byteLength));
  return {
    ...response,
    status: codeToHttpStatus(Code.InvalidArgument),
    header,
    body: (async function* () {
      yield body;
    })(),
  };
}

/**
 * The content types the HTTP port takes for a unary method, or for a
 * streaming one: as a list of media types (for `accept-post`), and in words.
 *
 * @internal
 */
export function acceptedContentTypes(unary: boolean): { list: string; words: string } {
  return unary
    ? {
        list: "application/json, application/proto, application/grpc-web+proto",
        words: "application/json or application/proto (Connect), application/grpc-web+proto (gRPC-Web)",
      }
    : {
        list: "application/connect+json, application/connect+proto, application/grpc-web+proto",
        words: "application/connect+json or application/connect+proto (Connect), application/grpc-web+proto (gRPC-Web)",
      };
}

/**
 * connect's empty 415 (a content type or GET encoding this method does not
 * take) or 405 (an HTTP method it does not take) as a Connect error naming
 * what was sent and what to send. A GET on a method that takes only POST is
 * a 405, whichever connect answered.
 */
function namedRefusal(
  status: 415 | 405,
  request: Parameters<UniversalHandler>[0],
  handler: UniversalHandler,
): UniversalServerResponse {
  const method = handler.method;
  const path = pathOf(method);
  const unary = method.methodKind === "unary";
  const getAllowed = unary && method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;
  const header = new Headers({ "content-type": "application/json" });
  let message: string;
  if (status === 405 || (request.method === "GET" && !getAllowed)) {
    status = 405;
    header.set("allow", getAllowed ? "GET, POST" : "POST");
    message = `${request.method} ${path}: send POST${getAllowed ? ", or GET" : ""}${request.method === "GET" ? " (GET is only for unary methods without side effects)" : ""}`;
  } else if (request.method === "GET") {
    message = `GET ${path}: the query takes encoding=json or encoding=proto, and message=`;
  } else {
    const accepted = acceptedContentTypes(unary);
    header.set("accept-post", accepted.list);
    message = `content-type ${JSON.stringify(request.header.get("content-type") ?? "")}: ${path} takes ${accepted.words}`;
  }
  const body = errorToJsonBytes(new ConnectError(message, Code.InvalidArgument), undefined);
  header.set("content-length", String(body.byteLength));
  return {
    status,
    header,
    body: (async function* () {
      yield body;
    })(),
  };
}

/**
 * Wraps one of connect-node's handlers so that a request connect could not
 * read gets INVALID_ARGUMENT naming the request type (see
 * {@link asInvalidRequest}), as on the gRPC port (see request-decoding.ts),
 * and not INTERNAL. connect reads a unary request before any interceptor
 * runs, so the call gate never sees such a call; its answer is rewritten
 * instead: a Connect unary error body, or the first envelope of a gRPC-Web
 * or Connect streaming answer when that envelope is already the end (the
 * trailers, or Connect's end of stream). Answers to calls the gate saw pass
 * unchanged; it reads a stream's request itself, through
 * {@link oneRequestMessage}.
 *
 * @internal
 */
export function requestErrorsAsInvalid(handler: UniversalHandler, onRefused?: RefusalListener): UniversalHandler {
  const method = handler.method;
  const path = pathOf(method);
  const wrapped = async (request: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
    const started = performance.now();
    // A request that does not decode, as the gRPC port counts one: connect's own INVALID_ARGUMENT
    // (JSON it cannot read) or one rewritten here. Not a body over the limit (RESOURCE_EXHAUSTED,
    // which grpc-js answers uncounted on its port too), nor a request whose client left.
    const refused = (answer: ConnectError) => {
      if (answer.code === Code.InvalidArgument)
        onRefused?.(path, answer.code, answer.rawMessage, performance.now() - started);
    };
    const response = await handler(request);
    // The client left, or the request was cut while arriving (counted then): connect's failure to
    // read the rest is no fault of the request's, and there is no one to answer.
    if (request.signal.aborted) return response;
    if (response.body === undefined && (response.status === 415 || response.status === 405))
      return namedRefusal(response.status, request, handler);
    // A call the gate saw had its request read whole (unary), or reads it inside the gate (server
    // streams; a client-streaming request is left as connect reads it). connect resolves a
    // streaming answer only once its first message or its end is ready, so by now the gate has
    // run if it was going to.
    if (response.body === undefined || request.contextValues?.get(reachedGateKey) !== false) return response;
    const contentType = response.header?.get("content-type") ?? "";
    // A compressed answer is left as it is: connect compresses only bodies of 1 KiB or more, larger than its error.
    if (response.header?.has("content-encoding")) return response;
    if (response.status !== 200 && contentType.startsWith("application/json"))
      return connectUnary(response, method, refused);
    if (contentType.startsWith("application/grpc-web")) {
      return {
        ...response,
        body: rewritingFirstEnvelope(response.body, (flags, payload) => {
          if ((flags & trailerFlag) !== trailerFlag || (flags & compressedFlag) !== 0) return undefined;
          const trailer = trailerParse(payload);
          const error = findTrailerError(trailer);
          if (error === undefined) return undefined;
          const invalid = asInvalidRequest(error, method);
          refused(invalid ?? error);
          return invalid && envelope(flags, trailerSerialize(setTrailerStatus(trailer, invalid)));
        }),
      };
    }
    if (contentType.startsWith("application/connect+")) {
      return {
        ...response,
        body: rewritingFirstEnvelope(response.body, (flags, payload) => {
          if ((flags & endStreamFlag) !== endStreamFlag || (flags & compressedFlag) !== 0) return undefined;
          const end = endStreamFromJson(payload);
          if (end.error === undefined) return undefined;
          const invalid = asInvalidRequest(end.error, method);
          refused(invalid ?? end.error);
          if (invalid === undefined) return undefined;
          return envelope(
            flags,
            new TextEncoder().encode(JSON.stringify(endStreamToJson(end.metadata, invalid, undefined))),
          );
        }),
      };
    }
    return response;
  };
  return Object.assign(wrapped, handler);
}
