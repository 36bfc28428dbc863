import type { Interceptor } from "@connectrpc/connect";

/** A token, or a function that returns the current one (for refreshing). */
export type TokenSource = string | (() => string | Promise<string>);

/**
 * An interceptor that sends `authorization: Bearer <token>` with every call,
 * unless the call already carries an authorization header.
 */
export function bearerToken(token: TokenSource): Interceptor {
  return (next) => async (req) => {
    if (!req.header.has("authorization")) {
      const value = typeof token === "string" ? token : await token();
      req.header.set("authorization", `Bearer ${value}`);
    }
    return next(req);
  };
}
