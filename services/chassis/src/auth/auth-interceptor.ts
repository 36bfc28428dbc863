import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { peerIdentityKey } from "./peer-identity.js";
import { principalKey, requireAdmin } from "./principal.js";
import type { TokenVerifier } from "./tokens.js";

/** Options for {@link authInterceptor}. */
export interface AuthOptions {
  verifier: TokenVerifier;
  /**
   * Methods that also answer callers without a token, by their descriptors
   * (`ProductsService.method.getProduct`), so that a misspelt one fails to
   * compile. A token sent to them is still verified, so that a bad one never
   * passes silently.
   */
  anonymous?: Iterable<DescMethod>;
}

/**
 * A server interceptor that verifies the bearer token of every call with the
 * public key and leaves the caller in the context values under
 * `principalKey`. No token, or a bad one, ends the call with UNAUTHENTICATED,
 * unless the caller is a mesh service identified by its certificate (mutual
 * TLS), which acts for no person: it passes with no principal, and the
 * handlers that need one still refuse it. What a caller may then do is for
 * each handler to decide.
 */
export function authInterceptor(options: AuthOptions): Interceptor {
  const anonymous = new Set([...(options.anonymous ?? [])].map((method) => `${method.parent.typeName}.${method.name}`));
  return (next) => async (req) => {
    const header = req.header.get("authorization");
    if (header === null) {
      if (anonymous.has(`${req.service.typeName}.${req.method.name}`)) return next(req);
      if (req.contextValues.get(peerIdentityKey).service !== undefined) return next(req);
      // A service's event stream (events/stream-events.ts) is for a mesh service's certificate, whatever the token: its handler says who may read it.
      if (req.method.name === "StreamEvents") return next(req);
      throw new ConnectError("missing bearer token: send authorization: Bearer <token>", Code.Unauthenticated);
    }
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw new ConnectError("authorization header must be: Bearer <token>", Code.Unauthenticated);
    req.contextValues.set(principalKey, await options.verifier.verify(match[1]!));
    return next(req);
  };
}

/**
 * A server interceptor for listeners that only admins may use: every call
 * needs a bearer token of an admin (UNAUTHENTICATED without a valid one,
 * PERMISSION_DENIED for anyone else).
 */
export function adminOnlyInterceptor(verifier: TokenVerifier): Interceptor {
  const authenticate = authInterceptor({ verifier });
  return (next) =>
    authenticate(async (req) => {
      requireAdmin({ values: req.contextValues });
      return next(req);
    });
}
