import type { ServiceImpl } from "@connectrpc/connect";
import { checkId, checkPageSize, invalidArgument, requireSelfOrAdmin } from "@shopmesh/chassis";
import type { UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { dependencyNames, type UserOrdersAggregator } from "./aggregate.js";

/** Longest page token accepted; orders issues far shorter ones, and tokens are cache keys. */
export const maxPageTokenLength = 1024;

/** The UserOrdersService handlers: validation and authorisation; the view is built by the aggregator. */
export function createUserOrdersService(aggregator: UserOrdersAggregator): ServiceImpl<typeof UserOrdersService> {
  return {
    async getUserOrders(request, context) {
      const userId = checkId("user_id", request.userId);
      const pageSize = checkPageSize("page_size", request.pageSize, { fallback: 20, max: 100 });
      if (request.pageToken.length > maxPageTokenLength) throw invalidArgument("page_token", "is not a token this service issued");
      requireSelfOrAdmin(context, userId);
      try {
        return await aggregator.view({
          userId,
          pageSize,
          pageToken: request.pageToken,
          authorization: context.requestHeader.get("authorization") ?? undefined,
          timeoutMs: context.timeoutMs(),
          signal: context.signal,
        });
      } finally {
        // The contract has no field for breaker state, so a caller sees it
        // in headers, and only when a breaker is not closed: x-breaker-products: open.
        const states = aggregator.breakerStates();
        for (const name of dependencyNames) {
          if (states[name] !== "closed") context.responseHeader.set(`x-breaker-${name}`, states[name]);
        }
      }
    },
  };
}
