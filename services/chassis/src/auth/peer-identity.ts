import { Code, ConnectError, createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { PeerCertificate } from "node:tls";
import { meshServiceOf } from "@shopmesh/sdk";

/**
 * Who is at the other end of the connection: its address, and what its TLS
 * certificate says. A mesh service's certificate, verified against the
 * mesh's CA during the handshake, names it (`spiffe://shopmesh.local/<service>`).
 * A caller with no certificate (a person's tool, the SDK with only the CA
 * certificate), or a plaintext connection, has no peer service.
 */
export interface PeerIdentity {
  /** The mesh service the verified client certificate names, or undefined. */
  readonly service: string | undefined;
  /**
   * The client's IP address as the TCP connection says ("127.0.0.1", "::1"),
   * or undefined when unknown. It is the immediate peer: a client behind a
   * proxy shows the proxy's address.
   */
  readonly address: string | undefined;
}

/** What grpc-js's server calls tell of their TLS session (`call.getAuthContext()`). */
export interface CallAuthContext {
  sslPeerCertificate?: PeerCertificate;
}

const noPeer: PeerIdentity = Object.freeze({ service: undefined, address: undefined });

/** Where the server leaves the caller's transport identity for interceptors and handlers to read. */
export const peerIdentityKey = createContextKey<PeerIdentity>(noPeer, { description: "peer certificate identity" });

/**
 * The peer of a grpc-js server call, read from the call only when first
 * asked for: most calls never need it, and reading the certificate builds
 * an object per call.
 */
export class CallPeerIdentity implements PeerIdentity {
  #service: string | undefined | null = null;

  constructor(private readonly call: { getAuthContext?(): CallAuthContext | null; getPeer?(): string }) {}

  get address(): string | undefined {
    return hostOfPeer(this.call.getPeer?.());
  }

  get service(): string | undefined {
    if (this.#service === null) {
      // grpc-js gives the certificate only when the TLS handshake verified it against the CA.
      const certificate = this.call.getAuthContext?.()?.sslPeerCertificate;
      this.#service = meshServiceOf(certificate?.subjectaltname);
    }
    return this.#service;
  }
}

/** What the HTTP port's identity is read from: the request's socket, a TLSSocket over HTTPS. */
export interface PeerSocket {
  readonly remoteAddress?: string | undefined;
  /** Whether the client presented a certificate that the mesh's CA verified (TLSSocket). */
  readonly authorized?: boolean;
  getPeerCertificate?(): PeerCertificate;
}

/**
 * The peer of an HTTP request: the socket's address, and over HTTPS the
 * service that a client certificate verified against the mesh's CA names,
 * read only when first asked for. The HTTP port asks for a certificate but
 * does not require one, so an unverified certificate counts as none.
 */
export class SocketPeerIdentity implements PeerIdentity {
  #service: string | undefined | null = null;

  constructor(private readonly socket: PeerSocket) {}

  get address(): string | undefined {
    return this.socket.remoteAddress?.replace(/^::ffff:/, "");
  }

  get service(): string | undefined {
    if (this.#service === null)
      this.#service =
        this.socket.authorized === true ? meshServiceOf(this.socket.getPeerCertificate?.().subjectaltname) : undefined;
    return this.#service;
  }
}

/**
 * The calling service, which must be one of `allowed`: UNAUTHENTICATED when
 * the caller presented no mesh certificate, PERMISSION_DENIED when its
 * certificate names another service.
 */
export function requirePeerService(context: Pick<HandlerContext, "values">, allowed: readonly string[]): string {
  const service = context.values.get(peerIdentityKey).service;
  const who = allowed.join(" or ");
  if (service === undefined)
    throw new ConnectError(
      `only ${who} may call this, identified by its mesh certificate over mutual TLS; this call presented none`,
      Code.Unauthenticated,
    );
  if (!allowed.includes(service))
    throw new ConnectError(
      `only ${who} may call this; the caller's certificate names ${service}`,
      Code.PermissionDenied,
    );
  return service;
}

/** grpc-js names a peer "<address>:<port>" (IPv6 without brackets), or "unknown". */
function hostOfPeer(peer: string | undefined): string | undefined {
  if (peer === undefined || peer === "unknown") return undefined;
  return peer.replace(/:\d+$/, "");
}
