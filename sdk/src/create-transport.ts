import type { Interceptor } from "@connectrpc/connect";
import { bearerToken, type TokenSource } from "./bearer-token.js";
import { createConnectNodeTransport } from "./connect-node-transport.js";
import { createGrpcTransport, type GrpcTransport, type GrpcTransportOptions } from "./grpc-transport.js";

/** Which HTTP/2 gRPC client carries the calls. */
export type TransportKind = "grpc-js" | "connect-node";

/** Options for {@link createTransport}. */
export interface CreateTransportOptions extends GrpcTransportOptions {
  /** `grpc-js` (default, faster) or connect-node's own gRPC client. */
  kind?: TransportKind;
  /** Access token sent as a bearer token with every call. */
  token?: TokenSource;
}

/**
 * Creates a transport for one shopmesh service, ready for
 * `createClient(Service, transport)`. The kind is replaceable without
 * touching the calling code: both kinds carry the same contracts.
 */
export function createTransport(options: CreateTransportOptions): GrpcTransport {
  const interceptors: Interceptor[] = [...(options.interceptors ?? [])];
  if (options.token !== undefined) interceptors.unshift(bearerToken(options.token));
  if (options.kind === "connect-node") {
    return createConnectNodeTransport({ target: options.target, interceptors });
  }
  return createGrpcTransport({ ...options, interceptors });
}
