import type { Interceptor } from "@connectrpc/connect";

/**
 * Wraps a call in interceptors the way Connect does: the first interceptor
 * is the outermost, so it sees the request first and the response last.
 * Used by the grpc-js transport on the client and by the chassis on the
 * server.
 *
 * @internal
 */
export function applyInterceptors<F extends (req: never) => Promise<unknown>>(
  next: F,
  interceptors: readonly Interceptor[] | undefined,
): F {
  if (!interceptors || interceptors.length === 0) return next;
  return interceptors.reduceRight<F>((inner, interceptor) => interceptor(inner as never) as unknown as F, next);
}
