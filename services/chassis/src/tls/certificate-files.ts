import { experimental, type ServerCredentials } from "@grpc/grpc-js";
import type { Logger } from "../logger.js";
import { readTlsFiles, type TlsFiles } from "./tls-settings.js";

type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;
type FilesListener = (files: TlsFiles) => void;

/**
 * A grpc-js certificate provider over a service's three PEM files that reads
 * them again every `reloadIntervalMs` and passes on a renewed set only once
 * it is whole (the key belongs to the certificate), so that a renewal
 * written file by file never leaves the server without a usable pair: it
 * keeps the last good one, and new connections get the renewed certificate
 * without a restart.
 */
export class CertificateFiles implements experimental.CertificateProvider {
  #current: TlsFiles;
  readonly #ca = new Set<CaListener>();
  readonly #identity = new Set<IdentityListener>();
  readonly #renewed = new Set<FilesListener>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly files: { certFile: string; keyFile: string; caFile: string; reloadIntervalMs: number },
    private readonly logger?: Logger,
  ) {
    this.#current = readTlsFiles(files);
  }

  /** The files as last read. */
  get current(): TlsFiles {
    return this.#current;
  }

  /** Reads the files now; tells the listeners when they changed. */
  reload(): void {
    let next: TlsFiles;
    try {
      next = readTlsFiles(this.files);
    } catch (error) {
      this.logger?.warn({ err: error }, "renewed TLS files are not usable yet; keeping the current certificate");
      return;
    }
    const current = this.#current;
    if (next.cert.equals(current.cert) && next.key.equals(current.key) && next.ca.equals(current.ca)) return;
    this.#current = next;
    this.logger?.info({ cert: this.files.certFile }, "TLS certificate reloaded");
    for (const listener of this.#identity) listener({ certificate: next.cert, privateKey: next.key });
    for (const listener of this.#ca) listener({ caCertificate: next.ca });
    for (const listener of this.#renewed) listener(next);
  }

  /**
   * Tells `listener` of each renewed set of files, whole and checked, as
   * grpc-js's listeners are told (for a server outside grpc-js, such as the
   * HTTP port's); the returned function stops telling it.
   */
  onRenewed(listener: FilesListener): () => void {
    this.#renewed.add(listener);
    this.#watch();
    return () => {
      this.#renewed.delete(listener);
      this.#unwatch();
    };
  }

  addCaCertificateListener(listener: CaListener): void {
    this.#ca.add(listener);
    this.#watch();
    process.nextTick(listener, { caCertificate: this.#current.ca });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.#ca.delete(listener);
    this.#unwatch();
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.#identity.add(listener);
    this.#watch();
    process.nextTick(listener, { certificate: this.#current.cert, privateKey: this.#current.key });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#identity.delete(listener);
    this.#unwatch();
  }

  #watch(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.reload(), this.files.reloadIntervalMs);
    this.#timer.unref();
  }

  #unwatch(): void {
    if (this.#ca.size > 0 || this.#identity.size > 0 || this.#renewed.size > 0 || this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * Server credentials for mutual TLS: the server presents its certificate,
 * asks every client for one and verifies it against the mesh's CA, but
 * accepts a client without one (callers outside the mesh reach the public
 * methods with the CA certificate alone); service-only methods then find no
 * peer identity and refuse the call.
 */
export function mutualTlsServerCredentials(files: CertificateFiles): ServerCredentials {
  // The same provider gives the identity and the CA; grpc-js's parameter names for the two are swapped.
  return experimental.createCertificateProviderServerCredentials(files, files, false);
}
