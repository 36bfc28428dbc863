import { createGrpcTransport as createConnectGrpcTransport } from "@connectrpc/connect-node";
import { Code, ConnectError, type Interceptor, type Transport } from "@connectrpc/connect";
import { isIP } from "node:net";
import { isHostAndPort } from "./grpc-target.js";
import type { GrpcTransport } from "./grpc-transport.js";
import { isTlsRefusal, meshServerIdentityCheck, type ClientTlsOptions } from "./mesh-tls.js";
import { boundedTimeoutMs } from "./timeout-limit.js";

/**
 * connect-node reports a refused TLS connection (a certificate that does
 * not verify or names another service) as INTERNAL; it is the connection
 * that failed, as grpc-js says with UNAVAILABLE, and the two kinds agree.
 */
const refusedTlsAsUnavailable: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (error) {
    if (error instanceof ConnectError && error.code === Code.Internal && isTlsRefusal(error))
      throw new ConnectError(error.rawMessage, Code.Unavailable, error.metadata, undefined, error.cause);
    throw error;
  }
};

/** Options for {@link createConnectNodeTransport}. */
export interface ConnectNodeTransportOptions {
  /** Server address as `host:port`, for example `127.0.0.1:50052`; not a grpc-js target with a scheme. */
  target: string;
  /** Connect interceptors, run in order, outermost first. */
  interceptors?: Interceptor[];
  /** TLS (HTTPS) with this CA, and mutual TLS with a certificate and key; plaintext when omitted. */
  tls?: ClientTlsOptions;
}

/**
 * Creates connect-node's own gRPC transport (HTTP/2, plaintext or TLS) for
 * a `host:port` target, as the grpc-js transport takes it; grpc-js's
 * schemes (`dns:///`, `unix:///`) are refused, since connect-node connects
 * to a URL. It needs no grpc-js at all, but spends about twice the CPU per
 * call; prefer `createGrpcTransport` between services.
 */
export function createConnectNodeTransport(options: ConnectNodeTransportOptions): GrpcTransport {
  const tls = options.tls;
  const baseUrl = `${tls === undefined ? "http" : "https"}://${options.target}`;
  if (!isHostAndPort(options.target))
    throw new RangeError(`target: "${options.target}" is not host:port, such as "127.0.0.1:50051" or "[::1]:50051"`);
  const host = new URL(baseUrl).hostname.replace(/^\[|\]$/g, "");
  const transport: Transport = createConnectGrpcTransport({
    baseUrl,
    interceptors: [...(options.interceptors ?? []), ...(tls === undefined ? [] : [refusedTlsAsUnavailable])],
    ...(tls === undefined
      ? {}
      : {
          nodeOptions: {
            ca: tls.ca,
            cert: tls.cert,
            key: tls.key,
            // SNI carries host names only, never an address.
            ...(isIP(host) === 0 ? { servername: host } : {}),
            checkServerIdentity: meshServerIdentityCheck(tls.service),
          },
        }),
  });
  return {
    target: options.target,
    unary: (method, signal, timeoutMs, header, message, contextValues) =>
      transport.unary(method, signal, boundedTimeoutMs(timeoutMs), header, message, contextValues),
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      transport.stream(method, signal, boundedTimeoutMs(timeoutMs), header, input, contextValues),
    close() {
      // connect-node keeps HTTP/2 sessions in a shared pool that closes idle
      // sessions by itself; there is nothing to release per transport.
    },
  };
}
