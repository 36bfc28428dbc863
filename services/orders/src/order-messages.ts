import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { OrderSchema, type Order } from "@shopmesh/sdk/orders/v1";
import type { StoredOrder } from "./order-store.js";

/** A stored order as the contract's Order, for answers and events alike. */
export function toOrder(order: StoredOrder): MessageInitShape<typeof OrderSchema> {
  const money = (minorUnits: bigint) => ({ currencyCode: order.currency, minorUnits });
  return {
    id: order.id,
    userId: order.userId,
    requestId: order.requestId,
    lines: order.lines.map((line) => ({
      productId: line.productId,
      quantity: line.quantity,
      unitPrice: money(line.unitPriceMinor),
    })),
    total: money(order.totalMinor),
    createTime: timestampFromMs(order.createdAt),
  };
}

const built = new WeakMap<StoredOrder, Order>();

/**
 * The Order message of a stored order, built once per stored object: a
 * placed order never changes, and the store's cache hands out the same
 * object for as long as it keeps the order, so a page of cached orders is
 * answered without building its messages again. Never to be modified.
 */
export function orderMessage(order: StoredOrder): Order {
  let message = built.get(order);
  if (message === undefined) {
    message = create(OrderSchema, toOrder(order));
    built.set(order, message);
  }
  return message;
}
