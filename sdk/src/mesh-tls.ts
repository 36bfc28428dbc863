import { checkServerIdentity as checkHostName, type PeerCertificate } from "node:tls";

/** The trust domain of every shopmesh identity: a service's certificate names it as `spiffe://shopmesh.local/<service>`. */
export const meshTrustDomain = "shopmesh.local";

/** The URI a service's certificate carries in its subject alternative names. */
export function meshIdentityUri(service: string): string {
  return `spiffe://${meshTrustDomain}/${service}`;
}

/**
 * The URI entries of a subject alternative name as Node prints it
 * (`URI:spiffe://shopmesh.local/users, DNS:localhost, IP Address:127.0.0.1`).
 */
export function uriNames(subjectAltName: string | undefined): string[] {
  if (!subjectAltName) return [];
  return subjectAltName
    .split(/,\s*/)
    .filter((entry) => entry.startsWith("URI:"))
    .map((entry) => entry.slice("URI:".length).replace(/^"|"$/g, ""));
}

/** The shopmesh service a certificate names, or undefined when it names none (or more than one). */
export function meshServiceOf(subjectAltName: string | undefined): string | undefined {
  const prefix = `spiffe://${meshTrustDomain}/`;
  const services = uriNames(subjectAltName)
    .filter((uri) => uri.startsWith(prefix))
    .map((uri) => uri.slice(prefix.length));
  return services.length === 1 && /^[a-z][a-z0-9-]*$/.test(services[0]!) ? services[0] : undefined;
}

/** TLS settings for a client: the CA that signed the server, and the client's own certificate for mutual TLS. */
export interface ClientTlsOptions {
  /** PEM of the CA certificate(s) the server's certificate must chain to. */
  ca: string | Buffer;
  /** PEM certificate presented to the server (mutual TLS); with `key`. */
  cert?: string | Buffer;
  /** PEM private key of `cert`. */
  key?: string | Buffer;
  /**
   * The shopmesh service the server must be: its certificate must carry
   * `spiffe://shopmesh.local/<service>`, else the connection is refused and
   * calls fail with UNAVAILABLE naming the mismatch.
   */
  service?: string;
}

/** A server whose certificate does not name the service the client meant to call. */
export class ServerIdentityError extends Error {
  readonly code = "ERR_SHOPMESH_SERVER_IDENTITY";
  constructor(service: string, named: string[]) {
    super(
      `the server's certificate does not name ${meshIdentityUri(service)} (it names ${named.length > 0 ? named.join(", ") : "no URI"}): refusing to call it as ${service}`,
    );
    this.name = "ServerIdentityError";
  }
}

/**
 * A checkServerIdentity for Node's TLS: when `service` is given, the
 * certificate's shopmesh identity first (its mismatch is the clearer
 * message), then the usual host name check.
 */
export function meshServerIdentityCheck(service: string | undefined) {
  return (host: string, certificate: PeerCertificate): Error | undefined => {
    if (service !== undefined) {
      const named = uriNames(certificate.subjectaltname);
      if (!named.includes(meshIdentityUri(service))) return new ServerIdentityError(service, named);
    }
    return checkHostName(host, certificate);
  };
}

/** Error codes of a TLS connection that was refused: the certificate or the handshake. */
const tlsRefusal = /^(ERR_TLS_|ERR_SSL_|ERR_SHOPMESH_SERVER_IDENTITY$|UNABLE_TO_|CERT_|DEPTH_ZERO_|SELF_SIGNED_)/;

/** Whether an error (or what caused it) is a refused TLS connection. */
export function isTlsRefusal(error: unknown): boolean {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 4; cause = cause.cause, depth++) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (typeof code === "string" && tlsRefusal.test(code)) return true;
  }
  return false;
}
