import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { admissionWaitMs, checkId, checkPageSize, invalidArgument, requireSelfOrAdmin } from "@shopmesh/chassis";
import { Consistency, type UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import type { UserOrdersAggregator } from "./aggregate.js";
import { dependencyNames } from "./dependencies.js";
import { eventualView } from "./eventual-view.js";
import type { Projection } from "./projection/projection.js";
import { countDegradations } from "./view-metrics.js";

/** Longest page token accepted; orders issues far shorter ones, and tokens are cache keys. */
export const maxPageTokenLength = 1024;

/**
 * The UserOrdersService handlers: validation, authorisation and the choice
 * of consistency. A STRONG view is built by the aggregator; an EVENTUAL one
 * from the projection (undefined when the projection is turned off).
 */
export function createUserOrdersService(
  aggregator: UserOrdersAggregator,
  projection?: Projection,
): ServiceImpl<typeof UserOrdersService> {
  return {
    async getUserOrders(request, context) {
      const userId = checkId("user_id", request.userId);
      const pageSize = checkPageSize("page_size", request.pageSize, { fallback: 20, max: 100 });
      if (request.pageToken.length > maxPageTokenLength)
        throw invalidArgument("page_token", "is not a token this service issued");
      const consistency = request.consistency === Consistency.UNSPECIFIED ? Consistency.STRONG : request.consistency;
      if (consistency !== Consistency.STRONG && consistency !== Consistency.EVENTUAL) {
        throw invalidArgument(
          "consistency",
          `must be CONSISTENCY_STRONG or CONSISTENCY_EVENTUAL, not ${request.consistency}`,
        );
      }
      requireSelfOrAdmin(context, userId);
      if (consistency === Consistency.EVENTUAL) {
        if (!projection)
          throw new ConnectError("EVENTUAL views are turned off here (PROJECTION=off)", Code.FailedPrecondition);
        return countDegradations(eventualView(projection, { userId, pageSize, pageToken: request.pageToken }));
      }
      try {
        return countDegradations(
          await aggregator.view({
            userId,
            pageSize,
            pageToken: request.pageToken,
            authorization: context.requestHeader.get("authorization") ?? undefined,
            timeoutMs: context.timeoutMs(),
            waitedMs: admissionWaitMs(context),
            signal: context.signal,
          }),
        );
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
