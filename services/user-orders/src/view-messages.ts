// Building the view's messages from what users, orders and products answered.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Order } from "@shopmesh/sdk/orders/v1";
import type { Product } from "@shopmesh/sdk/products/v1";
import type { OrderViewSchema, UserProfileSchema } from "@shopmesh/sdk/userorders/v1";
import type { User } from "@shopmesh/sdk/users/v1";

export function toProfile(
  user: Pick<User, "id" | "email" | "displayName">,
): MessageInitShape<typeof UserProfileSchema> {
  return { userId: user.id, email: user.email, displayName: user.displayName };
}

/**
 * The orders with the details of each line's product. A line whose product is
 * not in `products` (products failed, or the product is gone) keeps what the
 * order itself says: id, quantity and the unit price paid.
 */
export function toOrderViews(
  orders: readonly Order[],
  products: ReadonlyMap<string, Product>,
): MessageInitShape<typeof OrderViewSchema>[] {
  return orders.map((order) => ({
    orderId: order.id,
    createTime: order.createTime,
    total: order.total,
    lines: order.lines.map((line) => {
      const product = products.get(line.productId);
      return {
        productId: line.productId,
        quantity: line.quantity,
        unitPrice: line.unitPrice,
        product: product && { name: product.name, description: product.description, currentPrice: product.price },
      };
    }),
  }));
}

/** Every product the orders mention, each once, in first-seen order. */
export function distinctProductIds(orders: readonly { lines: readonly { productId: string }[] }[]): string[] {
  return [...new Set(orders.flatMap((order) => order.lines.map((line) => line.productId)))];
}
