import { isIP } from "node:net";
import { credentials as grpcCredentials } from "@grpc/grpc-js";
import type { Interceptor } from "@connectrpc/connect";
import { bearerToken, type TokenSource } from "./bearer-token.js";
import { createConnectNodeTransport } from "./connect-node-transport.js";
import { grpcTargetSchemes } from "./grpc-target.js";
import { createGrpcTransport, type GrpcTransport, type GrpcTransportOptions } from "./grpc-transport.js";
import { meshServerIdentityCheck, type ClientTlsOptions } from "./mesh-tls.js";

/** Which HTTP/2 gRPC client carries the calls. */
export type TransportKind = "grpc-js" | "connect-node";

/** Options for {@link createTransport}. */
export interface CreateTransportOptions extends GrpcTransportOptions {
  /** `grpc-js` (default, faster) or connect-node's own gRPC client. */
  kind?: TransportKind;
  /** Access token sent as a bearer token with every call. */
  token?: TokenSource;
  /**
   * TLS: the CA certificate is enough for the public methods; a mesh
   * service's certificate and key make it mutual TLS, and `service` checks
   * who the server is. Plaintext when omitted (a server with TLS=off).
   */
  tls?: ClientTlsOptions;
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
    return createConnectNodeTransport({ target: options.target, interceptors, tls: options.tls });
  }
  const tls = options.tls;
  const credentials =
    tls === undefined
      ? options.credentials
      : grpcCredentials.createSsl(pem(tls.ca), optionalPem(tls.key), optionalPem(tls.cert), {
          checkServerIdentity: meshServerIdentityCheck(tls.service),
        });
  // TLS names only host names (RFC 6066): a target given as an address is asked for by the service's DNS name instead.
  const nameOverride =
    tls?.service !== undefined && isIP(targetHost(options.target)) !== 0
      ? { "grpc.ssl_target_name_override": tls.service }
      : {};
  return createGrpcTransport({
    ...options,
    credentials,
    interceptors,
    channelOptions: { ...nameOverride, ...options.channelOptions },
  });
}

const pem = (value: string | Buffer): Buffer => (typeof value === "string" ? Buffer.from(value) : value);
const optionalPem = (value: string | Buffer | undefined): Buffer | null => (value === undefined ? null : pem(value));

const schemePrefix = new RegExp(`^(${grpcTargetSchemes.join("|")}):(\\/\\/[^/]*\\/)?`);

/** The host of a grpc-js target: `127.0.0.1:50051`, `[::1]:50051`, `dns:///products.internal:50052`. */
export function targetHost(target: string): string {
  const address = target.replace(schemePrefix, "");
  const bracketed = /^\[([^\]]+)\]/.exec(address);
  if (bracketed) return bracketed[1]!;
  const colon = address.lastIndexOf(":");
  return colon === -1 ? address : address.slice(0, colon);
}
