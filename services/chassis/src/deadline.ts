import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";

/**
 * How long a downstream call may take: its own timeout, cut to what is left
 * of the incoming call's deadline less a reserve for answering, so that the
 * answer leaves before the caller gives up. Throws DEADLINE_EXCEEDED when
 * nothing useful is left.
 */
export function downstreamTimeoutMs(
  context: Pick<HandlerContext, "timeoutMs">,
  ownTimeoutMs: number,
  reserveMs = 0,
  minimumMs = 1,
): number {
  const remaining = context.timeoutMs();
  const budget = remaining === undefined ? ownTimeoutMs : Math.min(ownTimeoutMs, remaining - reserveMs);
  if (budget < minimumMs) {
    throw new ConnectError("too little time left for a downstream call", Code.DeadlineExceeded);
  }
  return Math.floor(budget);
}
