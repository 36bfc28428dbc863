import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { OrderSchema } from "@shopmesh/sdk/orders/v1";
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
