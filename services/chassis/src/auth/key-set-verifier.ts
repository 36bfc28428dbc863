import type { CryptoKey } from "jose";
import { Code, ConnectError } from "@connectrpc/connect";
import { decodeProtectedHeader, importJWK } from "jose";
import type { Logger } from "../logger.js";
import type { Principal } from "./principal.js";
import { tokenAlgorithm, VerifiedTokens, type TokenVerifier } from "./tokens.js";

/** One published verifying key: its id and the raw 32-byte Ed25519 public key. */
export interface PublishedKey {
  keyId: string;
  publicKey: Uint8Array;
}

/** Options for {@link createKeySetVerifier}. */
export interface KeySetVerifierOptions {
  /** Reads the keys the issuer publishes now (the users service's GetSigningKeys). */
  fetchKeys: () => Promise<readonly PublishedKey[]>;
  /**
   * The key that checks tokens with no `kid` header, if any: the
   * operator-provisioned key that long-lived service tokens are signed with.
   */
  unnamedKey?: CryptoKey;
  /**
   * Least time after a fetch that taught nothing new before a token with an
   * unknown key id may cause another fetch. Tokens naming made-up ids then
   * cost the issuer one call per interval, not one per call.
   */
  minRefreshIntervalMs?: number;
  /** First wait after a failed fetch before the next; doubles up to `minRefreshIntervalMs`. */
  retryBackoffMs?: number;
  logger?: Logger;
}

/** A token verifier over a key set that is fetched, cached and refreshed. */
export interface KeySetVerifier extends TokenVerifier {
  /** Fetches the key set now unless a fetch is in flight (which it then waits for). */
  refresh(): Promise<void>;
  /** How many fetches have been started, for logs and tests. */
  readonly fetches: number;
}

/** The default for {@link KeySetVerifierOptions.minRefreshIntervalMs}. */
export const defaultMinKeyRefreshIntervalMs = 30_000;

/**
 * Verifies tokens with the published key their `kid` names. The key set is
 * fetched once at creation (without waiting: a service may start before the
 * issuer), kept, and fetched again only when a token names a key it does not
 * hold. At most one fetch runs at a time and every call that needs it waits
 * for that one. A fetch that finds a new key (a rotation) lets the next
 * unknown id fetch again at once; a fetch that finds nothing new holds
 * further fetches off for `minRefreshIntervalMs`. While the issuer cannot be
 * reached the cached keys keep working, and a token naming a key not in the
 * cache is answered UNAVAILABLE (try again) rather than UNAUTHENTICATED: the
 * token may well be good.
 */
export function createKeySetVerifier(options: KeySetVerifierOptions): KeySetVerifier {
  const minIntervalMs = options.minRefreshIntervalMs ?? defaultMinKeyRefreshIntervalMs;
  const firstBackoffMs = Math.min(options.retryBackoffMs ?? 250, minIntervalMs);
  const verified = new VerifiedTokens();
  let keys = new Map<string, CryptoKey>();
  let fetches = 0;
  let inFlight: Promise<void> | undefined;
  let nextFetchAtMs = 0;
  let backoffMs = firstBackoffMs;
  let lastFetchFailed = false;

  const fetchKeySet = async (): Promise<void> => {
    fetches += 1;
    try {
      const published = await options.fetchKeys();
      const next = new Map<string, CryptoKey>();
      for (const key of published) {
        const known = keys.get(key.keyId);
        next.set(
          key.keyId,
          known ??
            ((await importJWK(
              { kty: "OKP", crv: "Ed25519", x: Buffer.from(key.publicKey).toString("base64url") },
              tokenAlgorithm,
            )) as CryptoKey),
        );
      }
      const learned = [...next.keys()].filter((id) => !keys.has(id));
      keys = next;
      lastFetchFailed = false;
      backoffMs = firstBackoffMs;
      nextFetchAtMs = learned.length > 0 ? 0 : Date.now() + minIntervalMs;
      options.logger?.info({ keyIds: [...next.keys()], learned }, "fetched the token signing keys");
    } catch (error) {
      lastFetchFailed = true;
      nextFetchAtMs = Date.now() + backoffMs;
      backoffMs = Math.min(backoffMs * 2, minIntervalMs);
      options.logger?.warn(
        { err: error instanceof Error ? error.message : String(error), cachedKeys: keys.size },
        "cannot fetch the token signing keys; the cached ones stay in use",
      );
    }
  };

  const refresh = (): Promise<void> => {
    inFlight ??= fetchKeySet().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };

  const keyFor = async (keyId: string): Promise<CryptoKey> => {
    const cached = keys.get(keyId);
    if (cached) return cached;
    if (inFlight) await inFlight;
    else if (Date.now() >= nextFetchAtMs) await refresh();
    const fetched = keys.get(keyId);
    if (fetched) return fetched;
    if (lastFetchFailed) {
      throw new ConnectError(
        "the access token's signing key cannot be fetched from the users service right now; try again",
        Code.Unavailable,
      );
    }
    throw new ConnectError("access token is signed with an unknown key", Code.Unauthenticated);
  };

  const verify = async (token: string): Promise<Principal> => {
    let keyId: unknown;
    try {
      keyId = decodeProtectedHeader(token).kid;
    } catch {
      throw new ConnectError("access token is not valid", Code.Unauthenticated);
    }
    if (keyId === undefined) {
      if (!options.unnamedKey) throw new ConnectError("access token names no signing key (kid)", Code.Unauthenticated);
      return verified.check(token, options.unnamedKey);
    }
    if (typeof keyId !== "string" || keyId === "")
      throw new ConnectError("access token is not valid", Code.Unauthenticated);
    return verified.check(token, await keyFor(keyId));
  };

  void refresh();
  return {
    verify: (token) => Promise.resolve(verified.get(token) ?? verify(token)),
    refresh,
    get fetches() {
      return fetches;
    },
  };
}
