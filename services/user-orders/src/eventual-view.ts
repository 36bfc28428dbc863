// The EVENTUAL view: built from the local projection, with no downstream call.
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { decodePageToken, encodePageToken } from "@shopmesh/chassis";
import {
  Consistency,
  Dependency,
  Fallback,
  GetUserOrdersResponseSchema,
  OrderViewSchema,
  type DegradationSchema,
  type OrderView,
  type GetUserOrdersResponse,
  type StreamLagSchema,
} from "@shopmesh/sdk/userorders/v1";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { dependencyEnum } from "./dependencies.js";
import type { ProjectedProduct } from "./db/schema.js";
import type { Projection } from "./projection/projection.js";
import type { ProjectedOrderWithLines } from "./projection/projection-store.js";
import type { StreamState } from "./projection/stream-follower.js";
import { checkViewSize, distinctProductIds, toProfile } from "./view-messages.js";

/** How far the projection is behind each source, as the response reports it. */
export function toStreamLags(
  states: readonly StreamState[],
  now = Date.now(),
): MessageInitShape<typeof StreamLagSchema>[] {
  return states.map((state) => ({
    source: dependencyEnum[state.stream],
    appliedSequence: BigInt(state.position.sequence),
    headSequence: BigInt(state.headSequence),
    connected: state.connected,
    lastContactAge:
      state.lastContactAt === undefined ? undefined : durationFromMs(Math.max(0, now - state.lastContactAt)),
  }));
}

/**
 * Lines whose product the projection does not hold while the products
 * stream is behind or disconnected are listed as a degradation, as a STRONG
 * view lists a products failure: an order can reach the projection before
 * its product does (the streams are independent), and a client should not
 * have to read stream_lags to learn that details are missing. Once the
 * stream has caught up, a product it never carried is simply unknown, and
 * the line lacks details without a degradation, as in a STRONG view.
 */
function missingProducts(
  ids: readonly string[],
  products: StreamState,
): MessageInitShape<typeof DegradationSchema> | undefined {
  const behind = !products.connected || products.position.sequence < products.headSequence || !products.caughtUpOnce;
  if (!behind) return undefined;
  const state = `products stream ${products.connected ? "connected" : "disconnected"}, applied ${products.position.sequence} of ${products.headSequence}`;
  return {
    dependency: Dependency.PRODUCTS,
    code: "UNAVAILABLE",
    fallback: Fallback.NO_PRODUCT_DETAILS,
    message: `${ids.length} product(s) not in the projection yet (${state})`,
  };
}

const builtViews = new WeakMap<
  ProjectedOrderWithLines,
  { products: (ProjectedProduct | undefined)[]; view: OrderView }
>();

/**
 * The OrderView of a projected order with the current details of its lines'
 * products. The store hands out the same objects for an order and for a
 * product until the product changes (an order never does), so the message
 * built for an order is kept (weakly, with the order's object) with the
 * product objects it was built from, and built again only when one of them
 * is no longer the current one. Never to be modified.
 */
function orderView(order: ProjectedOrderWithLines, products: ReadonlyMap<string, ProjectedProduct>): OrderView {
  const built = builtViews.get(order);
  if (built !== undefined && order.lines.every((line, i) => products.get(line.productId) === built.products[i]))
    return built.view;
  const money = (minorUnits: bigint, currency = order.currency) => ({ currencyCode: currency, minorUnits });
  const used = order.lines.map((line) => products.get(line.productId));
  const view = create(OrderViewSchema, {
    orderId: order.id,
    createTime: timestampFromMs(order.createdAt),
    total: money(order.totalMinor),
    lines: order.lines.map((line, i) => {
      const product = used[i];
      return {
        productId: line.productId,
        quantity: line.quantity,
        unitPrice: money(line.unitPriceMinor),
        product: product && {
          name: product.name,
          description: product.description,
          currentPrice: money(product.priceMinor, product.currency),
        },
      };
    }),
  });
  builtViews.set(order, { products: used, view });
  return view;
}

/**
 * A user's view from the projection. A user the projection does not hold is
 * NOT_FOUND only once the users stream has caught up with its source since
 * start; before that the projection cannot tell, and answers UNAVAILABLE.
 */
export function eventualView(
  projection: Projection,
  request: { userId: string; pageSize: number; pageToken: string },
): GetUserOrdersResponse {
  const store = projection.store;
  const user = store.user(request.userId);
  if (!user) {
    if (projection.state("users").caughtUpOnce)
      throw new ConnectError(`user ${request.userId} not found`, Code.NotFound);
    throw new ConnectError(
      "the projection has not caught up with the users stream yet; ask with STRONG consistency",
      Code.Unavailable,
    );
  }
  const cursor = decodePageToken<{ before: string }>("page_token", request.pageToken, { before: "id" });
  const { orders: page, more } = store.ordersPage(request.userId, cursor?.before, request.pageSize);
  const productIds = distinctProductIds(page);
  const products = store.products(productIds);
  const missing = productIds.filter((id) => !products.has(id));
  const degradation = missing.length > 0 ? missingProducts(missing, projection.state("products")) : undefined;
  checkViewSize(page, (id) => products.get(id));
  const last = page.at(-1);
  return create(GetUserOrdersResponseSchema, {
    profile: toProfile(user),
    orders: page.map((order) => orderView(order, products)),
    nextPageToken: more && last ? encodePageToken({ before: last.id }) : "",
    degradations: degradation ? [degradation] : [],
    consistency: Consistency.EVENTUAL,
    streamLags: toStreamLags(projection.states()),
  });
}
