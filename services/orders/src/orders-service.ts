import { Code, ConnectError, type Client, type ServiceImpl } from "@connectrpc/connect";
import {
  checkId,
  checkKey,
  checkPageSize,
  checkRange,
  decodePageToken,
  downstreamTimeoutMs,
  encodePageToken,
  invalidArgument,
  isOutageCode,
  requirePerson,
  requirePrincipal,
  requireSelfOrAdmin,
  streamEventsHandler,
  statusName,
} from "@shopmesh/chassis";
import type { OrdersService } from "@shopmesh/sdk/orders/v1";
import type { ProductsService } from "@shopmesh/sdk/products/v1";
import { orderMessage, toOrder } from "./order-messages.js";
import { priceOrder } from "./order-pricing.js";
import type { OrderStore, StoredOrder } from "./order-store.js";
import { requestFingerprint } from "./request-fingerprint.js";

/** Most items one order may hold. */
export const maxOrderItems = 100;
/** Most of one product one order may hold. */
export const maxQuantity = 1000;

/**
 * The order a request_id already placed, when the request asking again is the
 * same request; otherwise ALREADY_EXISTS naming request_id. Payment APIs
 * refuse a reused idempotency key with different parameters rather than
 * answer with the first result (Stripe's idempotency_error, the IETF
 * Idempotency-Key draft's 422), since the caller would take the old order for
 * the new one. ALREADY_EXISTS says what happened in gRPC's terms: the order
 * this request_id names exists already, and no retry of the call will ever
 * succeed; FAILED_PRECONDITION would suggest a state that may change. An
 * order written before fingerprints were kept is compared by its lines,
 * which record the items it was asked for exactly.
 */
function sameRequest(order: StoredOrder, fingerprint: string): StoredOrder {
  const stored = order.requestFingerprint ?? requestFingerprint(order.lines);
  if (stored !== fingerprint) {
    throw new ConnectError(
      `request_id: ${JSON.stringify(order.requestId)} already placed order ${order.id} with different items; ` +
        "a new order needs a new request_id",
      Code.AlreadyExists,
    );
  }
  return order;
}

/** Dependencies of the orders handlers. */
export interface OrdersServiceDeps {
  store: OrderStore;
  products: Client<typeof ProductsService>;
  /** Longest the products check may take, before the incoming deadline cuts it. */
  productsTimeoutMs: number;
}

/** The OrdersService handlers: validation, authorisation, pricing; data access is in OrderStore. */
export function createOrdersService(deps: OrdersServiceDeps): ServiceImpl<typeof OrdersService> {
  return {
    async createOrder(request, context) {
      const caller = requirePerson(context);
      const requestId = checkKey("request_id", request.requestId, { max: 100 });
      if (request.items.length === 0) throw invalidArgument("items", "must hold at least one item");
      if (request.items.length > maxOrderItems)
        throw invalidArgument("items", `must hold at most ${maxOrderItems} items`);
      const seen = new Set<string>();
      const items = request.items.map((item, index) => {
        const productId = checkId(`items[${index}].product_id`, item.productId);
        if (seen.has(productId))
          throw invalidArgument(`items[${index}].product_id`, `names product ${productId} twice`);
        seen.add(productId);
        return { productId, quantity: checkRange(`items[${index}].quantity`, item.quantity, 1, maxQuantity) };
      });

      const fingerprint = requestFingerprint(items);

      // A retry of an order already placed needs no products call at all.
      const earlier = deps.store.byRequest(caller.userId, requestId);
      if (earlier) return { order: toOrder(sameRequest(earlier, fingerprint)) };

      // Price every item from the catalog, within our own deadline. A caller
      // whose deadline is spent learns DEADLINE_EXCEEDED, not UNAVAILABLE:
      // products is not at fault, and UNAVAILABLE invites a retry.
      const timeoutMs = downstreamTimeoutMs(context, deps.productsTimeoutMs, 20);
      let found;
      try {
        found = await deps.products.batchGetProducts(
          { productIds: items.map((item) => item.productId) },
          { timeoutMs, signal: context.signal },
        );
      } catch (error) {
        const cause = ConnectError.from(error);
        if (context.signal.aborted) throw cause;
        if (cause.code === Code.DeadlineExceeded && timeoutMs < deps.productsTimeoutMs) {
          throw new ConnectError(
            "the call's deadline ran out before products could price the order; no order was written",
            Code.DeadlineExceeded,
          );
        }
        // An outage may pass; any other answer from products is a fault of
        // ours that no retry of the caller's would mend.
        throw new ConnectError(
          isOutageCode(cause.code)
            ? `cannot check products: ${cause.rawMessage}; no order was written`
            : `cannot check products: products answered ${statusName(cause.code)} (${cause.rawMessage}); no order was written`,
          isOutageCode(cause.code) ? Code.Unavailable : Code.Internal,
        );
      }
      const priced = priceOrder(items, new Map(found.products.map((product) => [product.id, product.price])));

      // A concurrent request with this request_id may have placed its order
      // since the check above: place() then returns that one, to be compared.
      const { order } = deps.store.place({
        userId: caller.userId,
        requestId,
        requestFingerprint: fingerprint,
        ...priced,
      });
      return { order: toOrder(sameRequest(order, fingerprint)) };
    },

    getOrder(request, context) {
      const id = checkId("order_id", request.orderId);
      requirePrincipal(context);
      const order = deps.store.byId(id);
      if (!order) throw new ConnectError(`order ${id} not found`, Code.NotFound);
      requireSelfOrAdmin(context, order.userId);
      return { order: orderMessage(order) };
    },

    listOrders(request, context) {
      const userId = checkId("user_id", request.userId);
      requireSelfOrAdmin(context, userId);
      const pageSize = checkPageSize("page_size", request.pageSize, { fallback: 20, max: 100 });
      const cursor = decodePageToken<{ before: string }>("page_token", request.pageToken, { before: "id" });
      const rows = deps.store.pageForUser(userId, cursor?.before, pageSize + 1);
      const page = rows.slice(0, pageSize);
      const last = page.at(-1);
      return {
        orders: page.map(orderMessage),
        nextPageToken: rows.length > pageSize && last ? encodePageToken({ before: last.id }) : "",
      };
    },

    streamEvents: streamEventsHandler(deps.store.events),
  };
}
