import { setTimeout as sleep } from "node:timers/promises";
import type { Client } from "@connectrpc/connect";
import type { OrdersService } from "@shopmesh/sdk/orders/v1";
import type { ProductsService } from "@shopmesh/sdk/products/v1";
import { Consistency, Dependency, Fallback, type UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { streamStates } from "./view-load.js";

/**
 * What an EVENTUAL view shows when one source stream is held back while
 * another flows: a product created and ordered at once, with the products
 * stream refused (an injected fault on StreamEvents) and the orders stream
 * connected, until the fault is lifted.
 */
export interface CrossStreamProbe {
  /** How long the products stream was held back after the order was acknowledged. */
  holdMs: number;
  /** From the order's acknowledgement until an EVENTUAL view listed it (undefined: never). */
  orderSeenMs: number | undefined;
  /** From the order's acknowledgement until the fault on StreamEvents was lifted. */
  faultLiftedMs: number | undefined;
  /** From the order's acknowledgement until its line had the product's details (undefined: not within 20 s). */
  detailsSeenMs: number | undefined;
  /** EVENTUAL answers that listed the order without the product's details. */
  incompleteAnswers: number;
  /** Of those, how many listed a degradation. */
  incompleteWithDegradation: number;
  /**
   * Of those, how many had stream_lags report the products stream
   * disconnected, and how many disconnected or behind (applied below head):
   * once the fault is lifted the stream reconnects and reports its head
   * before the held-back event is applied.
   */
  incompleteWithProductsDisconnected: number;
  incompleteWithProductsBehind: number;
  /** Why the probe could not run, if it could not. */
  error?: string;
}

/**
 * Creates a product (as admin) and orders it (as `customerId`), then polls
 * the customer's EVENTUAL view every 2 ms: until the order is listed, and
 * until its line carries the product's details. `holdMs` after the order's
 * acknowledgement it calls `lift` (which removes whatever holds the products
 * stream back), so that the details can arrive.
 */
export async function crossStreamProbe(options: {
  products: Client<typeof ProductsService>;
  orders: Client<typeof OrdersService>;
  view: Client<typeof UserOrdersService>;
  customerId: string;
  holdMs: number;
  lift: () => Promise<void>;
}): Promise<CrossStreamProbe> {
  // Let the reader settle first: it has just been restarted, its first answers are slow and it is
  // busy catching up (see the reader's outage), which would be counted as the order's staleness.
  // Settled: five answers in a row, each within 20 ms (or 5 s gone by).
  const settling = performance.now();
  for (let fast = 0; fast < 5 && performance.now() - settling < 5000; ) {
    const sent = performance.now();
    const ok = await options.view
      .getUserOrders(
        { userId: options.customerId, pageSize: 1, consistency: Consistency.EVENTUAL },
        { timeoutMs: 1000 },
      )
      .then(
        () => true,
        () => false,
      );
    fast = ok && performance.now() - sent < 20 ? fast + 1 : 0;
    await sleep(ok ? 2 : 10);
  }
  const { product } = await options.products.createProduct(
    {
      name: "Fresh product, stream held back",
      description: "Created and ordered while the products stream was refused.",
      price: { currencyCode: "EUR", minorUnits: 1234n },
    },
    { timeoutMs: 5000 },
  );
  const { order } = await options.orders.createOrder(
    { requestId: `cross-stream-${product!.id}`, items: [{ productId: product!.id, quantity: 1 }] },
    { timeoutMs: 5000 },
  );
  const ack = performance.now();
  const orderId = order!.id;
  let orderSeenMs: number | undefined;
  let faultLiftedMs: number | undefined;
  let detailsSeenMs: number | undefined;
  let incompleteAnswers = 0;
  let incompleteWithDegradation = 0;
  let incompleteWithProductsDisconnected = 0;
  let incompleteWithProductsBehind = 0;
  while (detailsSeenMs === undefined && performance.now() - ack < 20_000) {
    if (faultLiftedMs === undefined && performance.now() - ack >= options.holdMs) {
      await options.lift();
      faultLiftedMs = performance.now() - ack;
    }
    const response = await options.view
      .getUserOrders(
        { userId: options.customerId, pageSize: 50, consistency: Consistency.EVENTUAL },
        { timeoutMs: 1000 },
      )
      .catch(() => undefined);
    const listed = response?.orders.find((o) => o.orderId === orderId);
    if (response && listed) {
      orderSeenMs ??= performance.now() - ack;
      if (listed.lines.every((l) => l.product !== undefined)) {
        detailsSeenMs = performance.now() - ack;
      } else {
        incompleteAnswers++;
        if (
          response.degradations.some(
            (d) => d.dependency === Dependency.PRODUCTS && d.fallback === Fallback.NO_PRODUCT_DETAILS,
          )
        )
          incompleteWithDegradation++;
        const streams = streamStates(response);
        const disconnected = streams.disconnected.includes("products");
        if (disconnected) incompleteWithProductsDisconnected++;
        if (disconnected || streams.behind.includes("products")) incompleteWithProductsBehind++;
      }
    }
    await sleep(2);
  }
  return {
    holdMs: options.holdMs,
    orderSeenMs,
    faultLiftedMs,
    detailsSeenMs,
    incompleteAnswers,
    incompleteWithDegradation,
    incompleteWithProductsDisconnected,
    incompleteWithProductsBehind,
  };
}
