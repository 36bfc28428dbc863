import type { CryptoKey } from "jose";
import { importPKCS8, importSPKI, jwtVerify, SignJWT, errors as joseErrors } from "jose";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Principal } from "./principal.js";

/** The JWS algorithm of every shopmesh token: Ed25519 signatures. */
export const tokenAlgorithm = "EdDSA";
const algorithm = tokenAlgorithm;
/** Who issues shopmesh tokens, and for whom they are meant. */
export const tokenIssuer = "shopmesh-users";
export const tokenAudience = "shopmesh";

/** Claims a verified token carries. */
export type TokenClaims = Omit<Principal, "token">;

/** Checks access tokens locally with the public key; no call to users. */
export interface TokenVerifier {
  verify(token: string): Promise<Principal>;
}

/** How many verified tokens a verifier remembers. */
const verifiedCacheSize = 10_000;

/**
 * Remembers verified tokens until their own expiry. An Ed25519 signature
 * check costs more than the rest of a cheap call, and a client sends the same
 * token with every call until it expires (at most `verifiedCacheSize` of
 * them, oldest dropped first). Only successes are remembered; a bad token is
 * checked every time.
 */
export class VerifiedTokens {
  readonly #verified = new Map<string, { principal: Principal; expiresAtMs: number }>();

  get(token: string): Principal | undefined {
    const known = this.#verified.get(token);
    if (!known) return undefined;
    if (known.expiresAtMs > Date.now()) return known.principal;
    this.#verified.delete(token);
    return undefined;
  }

  /** Checks the signature and claims of `token` with `key`, UNAUTHENTICATED when they fail. */
  async check(token: string, key: CryptoKey | Uint8Array): Promise<Principal> {
    try {
      const { payload } = await jwtVerify(token, key, {
        algorithms: [algorithm],
        issuer: tokenIssuer,
        audience: tokenAudience,
        requiredClaims: ["sub", "exp"],
      });
      const role = payload.role;
      if (typeof payload.sub !== "string" || (role !== "customer" && role !== "admin" && role !== "service")) {
        throw new ConnectError("access token lacks a subject or role", Code.Unauthenticated);
      }
      const principal: Principal = { userId: payload.sub, role, token };
      if (this.#verified.size >= verifiedCacheSize) this.#verified.delete(this.#verified.keys().next().value!);
      this.#verified.set(token, { principal, expiresAtMs: payload.exp! * 1000 });
      return principal;
    } catch (error) {
      if (error instanceof ConnectError) throw error;
      const reason = error instanceof joseErrors.JWTExpired ? "access token expired" : "access token is not valid";
      throw new ConnectError(reason, Code.Unauthenticated);
    }
  }
}

/**
 * Builds a verifier from one SPKI PEM public key, whatever key id a token
 * names; see {@link createKeySetVerifier} for keys that rotate.
 */
export async function createTokenVerifier(publicKeyPem: string): Promise<TokenVerifier> {
  const key = await importSPKI(publicKeyPem, algorithm);
  const verified = new VerifiedTokens();
  return {
    verify: (token) => Promise.resolve(verified.get(token) ?? verified.check(token, key)),
  };
}

/** Signs access tokens with the private key; only the users service has one. */
export interface TokenSigner {
  sign(claims: TokenClaims): Promise<{ token: string; expiresAt: Date }>;
}

/**
 * Builds a signer from the PKCS#8 PEM private key; tokens live `ttlSeconds`
 * and name `keyId` in their `kid` header, so that a verifier holding several
 * published keys knows which one to check them with.
 */
export async function createTokenSigner(
  privateKeyPem: string,
  ttlSeconds: number,
  keyId?: string,
): Promise<TokenSigner> {
  const key = await importPKCS8(privateKeyPem, algorithm);
  return {
    async sign(claims) {
      const now = Math.floor(Date.now() / 1000);
      const expiresAt = new Date((now + ttlSeconds) * 1000);
      const token = await new SignJWT({ role: claims.role })
        .setProtectedHeader(
          keyId === undefined ? { alg: algorithm, typ: "JWT" } : { alg: algorithm, typ: "JWT", kid: keyId },
        )
        .setIssuer(tokenIssuer)
        .setAudience(tokenAudience)
        .setSubject(claims.userId)
        .setIssuedAt(now)
        .setExpirationTime(now + ttlSeconds)
        .sign(key);
      return { token, expiresAt };
    },
  };
}
