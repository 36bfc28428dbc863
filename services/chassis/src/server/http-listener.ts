import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  cors as connectCors,
  createContextValues,
  type Interceptor,
  type ServiceImpl,
} from "@connectrpc/connect";
import { contentTypeRegExp as connectContentType, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { contentTypeRegExp as grpcWebContentType } from "@connectrpc/connect/protocol-grpc-web";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import cors from "cors";
import { maxTimerMs, type ConnectionConfig } from "../config.js";
import { peerIdentityKey, SocketPeerIdentity } from "../auth/peer-identity.js";
import type { CertificateFiles } from "../tls/certificate-files.js";
import type { TlsFiles } from "../tls/tls-settings.js";
import { acceptedContentTypes, requestErrorsAsInvalid } from "./http-request-decoding.js";
import { listenOn } from "./listen-on.js";
import { type ArrivingRequest, RequestArrivals } from "./request-arrivals.js";
import type { RefusalListener } from "./call-gate.js";

/** A service descriptor with its implementation (see service-server.ts's HostedService). */
interface HostedImpl {
  service: DescService;
  impl: object;
}

/** Options for {@link listenForHttp}. */
export interface HttpListenOptions {
  host: string;
  port: number;
  services: HostedImpl[];
  /** Connect interceptors around every call, outermost first (the HTTP call gate, then the service's). */
  interceptors: Interceptor[];
  /** Largest request message accepted, in bytes; larger ones get RESOURCE_EXHAUSTED. */
  maxRequestBytes: number;
  connections: ConnectionConfig;
  /** Origins whose browser pages may call; none: same origin only. */
  corsOrigins: readonly string[];
  /** Told about each connection closed for being over `connections.maxConnections`. */
  onDropped?: () => void;
  /**
   * Most requests kept while their bodies are still arriving: past that the
   * oldest are cut (see RequestArrivals); no bound when absent.
   */
  maxRequestsArriving?: number;
  /** Told about each request cut for a body that did not finish arriving, `afterMs` after its headers. */
  onCut?: (path: string, details: string, afterMs: number) => void;
  /** Told about each request connect-node could not read, answered INVALID_ARGUMENT before any interceptor saw it. */
  onRefused?: RefusalListener;
  /** Serve HTTPS with these files (the gRPC port's), following their renewals; plain HTTP when absent. */
  tls?: CertificateFiles;
}

/** A listening HTTP server for the Connect and gRPC-Web protocols. */
export interface HttpListener {
  readonly port: number;
  /**
   * Stops accepting connections and calls: calls that arrive on an open
   * connection are answered UNAVAILABLE, and connections close as their
   * calls finish. Resolves when the last one has.
   */
  close(): Promise<void>;
  /** Closes every connection now, calls in flight or not. */
  closeAll(): void;
}

/** What an HTTP request that never reaches a handler is answered: a Connect error in JSON. */
function answerError(res: ServerResponse, httpStatus: number, error: ConnectError, extra: Record<string, string> = {}) {
  const body = errorToJsonBytes(error, undefined);
  res.writeHead(httpStatus, {
    "content-type": "application/json",
    "content-length": body.byteLength,
    ...extra,
  });
  res.end(body);
}

/** What a POST in no content type any protocol here speaks is told to send: a unary method's types, the usual call. */
const acceptedForUnary = acceptedContentTypes(true);

/**
 * How long a client has to send a whole request once connected. Requests
 * are small (MAX_REQUEST_BYTES, 1 MiB by default); a response may stream
 * for as long as it likes.
 */
const requestTimeoutMs = 30_000;
/** Headers a request may carry: Connect and gRPC-Web need a handful. */
const maxHeadersCount = 100;
/**
 * Bytes a request's headers may take, Node's default, set here so that
 * `--max-http-header-size` in NODE_OPTIONS cannot raise it: it is the only
 * bound on what a request with too many headers holds before it is refused.
 */
const maxHeaderBytes = 16_384;

/**
 * Serves the given Connect services over HTTP/1.1 (HTTPS with `tls`) with
 * the Connect protocol (JSON and binary, unary and server-streaming) and gRPC-Web, through
 * connect-node's adapter: the same ServiceImpl objects and interceptors as
 * the gRPC port, for browsers and curl. The gRPC protocol stays on the gRPC
 * port (grpc-js). What the adapter would answer with an empty 404, 405 or
 * 415 (an unknown method, an HTTP method or content type the method does
 * not take) gets a Connect error naming the problem instead.
 *
 * The connection limits follow the gRPC port's settings: HANDSHAKE_TIMEOUT
 * bounds the wait for a request's headers, CONNECTION_IDLE_TIMEOUT an idle
 * keep-alive connection, MAX_CONNECTIONS the connections open at once.
 *
 * HTTPS is node:https, HTTP/1.1 over TLS, rather than node:http2's
 * createSecureServer with allowHTTP1: Connect and gRPC-Web are made to work
 * over HTTP/1.1, and node:https is node:http's server on TLS sockets, so
 * every limit above (headers and request timeouts, keep-alive, header count,
 * MAX_CONNECTIONS with its drop event) and the drain on close
 * (closeIdleConnections, closeAllConnections) stay what they are with TLS
 * off. node:http2's server has none of these for its HTTP/2 sessions, and
 * applies them to its HTTP/1.1 fallback only. A client wanting HTTP/2 has
 * the gRPC port.
 */
export async function listenForHttp(options: HttpListenOptions): Promise<HttpListener> {
  const shutdown = new AbortController();
  const adapter = connectNodeAdapter({
    routes(router) {
      for (const { service, impl } of options.services) router.service(service, impl as ServiceImpl<DescService>);
      // The adapter reads the router's handlers once routes() has returned.
      router.handlers.splice(
        0,
        router.handlers.length,
        ...router.handlers.map((handler) => requestErrorsAsInvalid(handler, options.onRefused)),
      );
    },
    // The client's address, as on the gRPC port (SignIn's throttle counts failures per address),
    // and over HTTPS the service a client certificate signed by the mesh's CA names.
    contextValues(req) {
      const values = createContextValues();
      values.set(peerIdentityKey, new SocketPeerIdentity(req.socket));
      return values;
    },
    grpc: false,
    grpcWeb: true,
    connect: true,
    interceptors: options.interceptors,
    readMaxBytes: options.maxRequestBytes,
    // Node's timers fire at once past 2^31 - 1 ms, so a longer timeout would end the call at once.
    maxTimeoutMs: maxTimerMs,
    // curl, fetch and browser forms do not send Connect-Protocol-Version.
    requireConnectProtocolHeader: false,
    // A misspelt field is an error to report, not a value to drop silently.
    jsonOptions: { ignoreUnknownFields: false },
    shutdownSignal: shutdown.signal,
    fallback(req, res) {
      answerError(
        res as ServerResponse,
        404,
        new ConnectError(
          `no method ${req.url ?? "/"} here: paths are /<package>.<Service>/<Method>, e.g. /${options.services[0]?.service.typeName ?? "pkg.Service"}/${options.services[0]?.service.methods[0]?.name ?? "Method"}`,
          Code.Unimplemented,
        ),
      );
    },
  });
  const allowCors =
    options.corsOrigins.length === 0
      ? undefined
      : cors({
          origin: [...options.corsOrigins],
          methods: [...connectCors.allowedMethods],
          // The bearer token travels in authorization.
          allowedHeaders: [...connectCors.allowedHeaders, "Authorization"],
          exposedHeaders: [...connectCors.exposedHeaders],
          maxAge: 7200,
        });

  const arrivals =
    options.maxRequestsArriving === undefined ? undefined : new RequestArrivals(options.maxRequestsArriving);
  /**
   * Keeps a request among those arriving until its body has been read
   * whole. A cut one loses its connection: HTTP/1.1 has no way to answer a
   * request whose body is still coming and go on with the connection, and
   * connect-node is reading that body.
   */
  const trackArrival = (req: IncomingMessage, res: ServerResponse, among: RequestArrivals<ArrivingRequest>) => {
    const arriving: ArrivingRequest = {
      startedAt: performance.now(),
      cut(details, afterMs) {
        options.onCut?.((req.url ?? "/").split("?")[0]!, details, afterMs);
        req.socket.destroy();
      },
    };
    among.add(arriving);
    const arrived = () => among.delete(arriving);
    req.once("end", arrived);
    res.once("close", arrived);
  };

  let closing = false;
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (closing) {
      answerError(res, 503, new ConnectError("the server is shutting down", Code.Unavailable), { connection: "close" });
      return;
    }
    // Once stopping, a connection whose call is answered has nothing more to wait for.
    res.once("finish", () => {
      if (closing) setImmediate(() => server.closeIdleConnections());
    });
    if (req.rawHeaders.length / 2 > maxHeadersCount) {
      req.resume();
      answerError(
        res,
        431,
        new ConnectError(`more than ${maxHeadersCount} request headers: send fewer`, Code.InvalidArgument),
        { connection: "close" },
      );
      return;
    }
    const contentType = req.headers["content-type"];
    if (
      req.method === "POST" &&
      !connectContentType.test(contentType ?? "") &&
      !grpcWebContentType.test(contentType ?? "")
    ) {
      // Drained, so that the answer is not cut short by a reset of a connection with unread bytes.
      req.resume();
      answerError(
        res,
        415,
        new ConnectError(
          `content-type ${contentType === undefined ? "missing" : JSON.stringify(contentType)}: send ${acceptedForUnary.words}`,
          Code.InvalidArgument,
        ),
        { "accept-post": acceptedForUnary.list },
      );
      return;
    }
    // A GET has no body to wait for.
    if (arrivals !== undefined && req.method === "POST" && !req.complete) trackArrival(req, res, arrivals);
    void adapter(req, res);
  };

  const serverOptions: ServerOptions = {
    headersTimeout: options.connections.handshakeTimeoutMs,
    requestTimeout: Math.max(requestTimeoutMs, options.connections.handshakeTimeoutMs),
    keepAliveTimeout: options.connections.idleTimeoutMs,
    maxHeaderSize: maxHeaderBytes,
    // Node checks the two timeouts above this often (every 30 s by default, which would let a silent client hold a connection for 40 s).
    connectionsCheckingInterval: Math.min(1_000, options.connections.handshakeTimeoutMs),
  };
  const listener =
    allowCors === undefined
      ? handle
      : (req: IncomingMessage, res: ServerResponse) => allowCors(req, res, () => handle(req, res));
  const tls = options.tls;
  let stopRenewals: (() => void) | undefined;
  let server: Server | HttpsServer;
  if (tls === undefined) server = createServer(serverOptions, listener);
  else {
    const secure = createHttpsServer(
      {
        ...serverOptions,
        ...secureContextOf(tls.current),
        // The headers timeout starts once the TLS handshake is over: a client silent before then is bounded here.
        handshakeTimeout: options.connections.handshakeTimeoutMs,
        // Asked for, not required: browsers and curl come without one, and a customer's token decides for them.
        requestCert: true,
        rejectUnauthorized: false,
      },
      listener,
    );
    // New connections get renewed files; open ones keep the certificate they were made with.
    stopRenewals = tls.onRenewed((files) => secure.setSecureContext(secureContextOf(files)));
    server = secure;
  }
  // No count limit in Node's parser, so that the handler sees a request with too many and names the limit:
  // past maxHeadersCount, Node 20 drops the rest without a word and Node 24 answers an empty 431.
  // maxHeaderBytes still bounds what a request's headers take.
  server.maxHeadersCount = 0;
  server.maxConnections = options.connections.maxConnections;
  server.on("drop", () => options.onDropped?.());
  // No clientError listener: Node then answers a malformed request 400, headers too large 431 and a slow one 408, and closes.

  const port = await listenOn(server, options.host, options.port).catch((error: unknown) => {
    stopRenewals?.();
    throw error;
  });

  let closed: Promise<void> | undefined;
  return {
    port,
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        stopRenewals?.();
        server.close(() => resolve());
        // Keep-alive connections between calls close now; busy ones once their call is answered.
        server.closeIdleConnections();
      });
      return closed;
    },
    closeAll() {
      stopRenewals?.();
      shutdown.abort(new ConnectError("the server is shutting down", Code.Unavailable));
      server.closeAllConnections();
    },
  };
}

/** The server's certificate and key, and the CA that a client certificate must chain to. */
function secureContextOf(files: TlsFiles) {
  return { cert: files.cert, key: files.key, ca: files.ca };
}
