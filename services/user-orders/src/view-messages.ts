// Building the view's messages from what users, orders and products answered.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
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

/**
 * The most a view may take encoded: 4 MiB, what gRPC clients (grpc-js,
 * grpc-go, buf curl) accept by default. A page of 100 orders of 100 lines,
 * each line carrying its product's 2,000-character description, would be
 * over 20 MB.
 */
export const maxViewBytes = 4 * 1024 * 1024;

/** What one order and one line take in the view besides their product's texts, rounded up. */
const orderBytes = 96;
const lineBytes = 96;

/**
 * Refuses a page whose view would take more than {@link maxViewBytes}, with
 * RESOURCE_EXHAUSTED naming page_size, before the view is built: counted
 * from the product texts each line repeats and a generous allowance for
 * everything else. Three bytes a character bound the texts' UTF-8 from
 * above; only a page over the limit by that bound has its bytes counted.
 */
export function checkViewSize(
  orders: readonly { lines: readonly { productId: string }[] }[],
  productTexts: (productId: string) => { name: string; description: string } | undefined,
): void {
  const size = (textBytes: (text: string) => number) => {
    let total = 0;
    for (const order of orders) {
      total += orderBytes;
      for (const line of order.lines) {
        const texts = productTexts(line.productId);
        total += lineBytes + (texts ? textBytes(texts.name) + textBytes(texts.description) : 0);
      }
    }
    return total;
  };
  if (size((text) => 3 * text.length) <= maxViewBytes) return;
  const total = size((text) => Buffer.byteLength(text));
  if (total > maxViewBytes) {
    throw new ConnectError(
      `page_size: the view of these ${orders.length} orders would take about ${(total / 1024 / 1024).toFixed(1)} MiB, over the ${maxViewBytes / 1024 / 1024} MiB a response may carry; ask for fewer orders`,
      Code.ResourceExhausted,
    );
  }
}
