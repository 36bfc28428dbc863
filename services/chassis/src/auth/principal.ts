import { Code, ConnectError, createContextKey, type HandlerContext } from "@connectrpc/connect";

/** Who is calling, as the verified access token says. */
export interface Principal {
  /** The user id (the token's subject). */
  userId: string;
  /**
   * customer: a person reading and changing only its own data; admin: a
   * person with access to everything; service: another service's process,
   * which may read event streams but acts for no person.
   */
  role: "customer" | "admin" | "service";
  /** The raw bearer token, for forwarding to downstream services. */
  token: string;
}

/** Where the auth interceptor leaves the caller for handlers to read. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: "authenticated caller" });

/** The caller, or UNAUTHENTICATED when the call carried no valid token. */
export function requirePrincipal(context: Pick<HandlerContext, "values">): Principal {
  const principal = context.values.get(principalKey);
  if (!principal) throw new ConnectError("this call needs a bearer token", Code.Unauthenticated);
  return principal;
}

/**
 * The caller, who must act for a person, a customer or an admin
 * (PERMISSION_DENIED otherwise): a service token acts for no one, so
 * nothing it did could belong to a user.
 */
export function requirePerson(context: Pick<HandlerContext, "values">): Principal {
  const principal = requirePrincipal(context);
  if (principal.role === "service")
    throw new ConnectError("a service token acts for no person and may not do this", Code.PermissionDenied);
  return principal;
}

/** The caller, who must be an admin (PERMISSION_DENIED otherwise). */
export function requireAdmin(context: Pick<HandlerContext, "values">): Principal {
  const principal = requirePrincipal(context);
  if (principal.role !== "admin") throw new ConnectError("only an admin may do this", Code.PermissionDenied);
  return principal;
}

/**
 * The caller, who must be the given user or an admin: customers read only
 * their own data.
 */
export function requireSelfOrAdmin(context: Pick<HandlerContext, "values">, userId: string): Principal {
  const principal = requirePerson(context);
  if (principal.role !== "admin" && principal.userId !== userId) {
    throw new ConnectError("a customer may read only its own data", Code.PermissionDenied);
  }
  return principal;
}
