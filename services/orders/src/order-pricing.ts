import { fitsInt64, int64Max, invalidArgument } from "@shopmesh/chassis";
import type { Money } from "@shopmesh/sdk/type/v1";

/** One requested item, validated. */
export interface OrderItem {
  productId: string;
  quantity: number;
}

/** An order's lines at their catalog prices, and its total. */
export interface PricedOrder {
  currency: string;
  lines: (OrderItem & { unitPriceMinor: bigint })[];
  totalMinor: bigint;
}

/**
 * Prices the items from the catalog's answer, in exact integer arithmetic:
 * Money is an int64 of minor units so that nothing rounds, and a sum of
 * JavaScript numbers rounds past 2^53. A line or a total that would not fit
 * an int64 cannot be written into the contract's Money, so it is refused,
 * naming the item (`items[i].quantity`) or, for the total, `items`.
 */
export function priceOrder(items: readonly OrderItem[], prices: ReadonlyMap<string, Money | undefined>): PricedOrder {
  const currencies = new Set<string>();
  let totalMinor = 0n;
  const lines = items.map((item, index) => {
    const price = prices.get(item.productId);
    if (!price) throw invalidArgument(`items[${index}].product_id`, `product ${item.productId} does not exist`);
    currencies.add(price.currencyCode);
    const lineMinor = BigInt(item.quantity) * price.minorUnits;
    if (!fitsInt64(lineMinor)) {
      throw invalidArgument(
        `items[${index}].quantity`,
        `${item.quantity} at ${price.minorUnits} minor units each comes to ${lineMinor}, more than an amount can hold (${int64Max})`,
      );
    }
    totalMinor += lineMinor;
    return { ...item, unitPriceMinor: price.minorUnits };
  });
  if (currencies.size > 1) throw invalidArgument("items", "all products of one order must be priced in one currency");
  if (!fitsInt64(totalMinor)) {
    throw invalidArgument(
      "items",
      `the order's total would be ${totalMinor} minor units, more than an amount can hold (${int64Max})`,
    );
  }
  return { currency: [...currencies][0]!, lines, totalMinor };
}
