// Whether orders can take an order: it prices every line from products, so
// after products was down it refuses orders until its channel reconnects.
import { setTimeout as sleep } from "node:timers/promises";
import { ConnectError, type Client } from "@connectrpc/connect";
import type { OrdersService } from "@shopmesh/sdk/orders/v1";
import { codeName } from "./view-load.js";

/**
 * How soon orders could place an order again once products was ready: it
 * prices every line from products, over a channel with its own reconnect
 * backoff.
 */
export interface OrdersBack {
  /** From `since` (products ready) until the first CreateOrder that succeeded was acknowledged (NaN: none within 30 s). */
  afterReadyMs: number;
  /** CreateOrder calls refused meanwhile (one every 50 ms), by status and message. */
  refused: number;
  firstRefusal: string | undefined;
}

/**
 * Tries CreateOrder every 50 ms (up to 30 s) from `since` (a
 * performance.now() time) until orders accepts one: a readiness wait that
 * also measures how long orders kept refusing. Request ids start with
 * `requestPrefix`.
 */
export async function waitForOrders(
  orders: Client<typeof OrdersService>,
  productId: string,
  since: number,
  requestPrefix: string,
): Promise<OrdersBack> {
  let refused = 0;
  let firstRefusal: string | undefined;
  for (let attempt = 0; performance.now() - since < 30_000; attempt++) {
    try {
      await orders.createOrder(
        { requestId: `${requestPrefix}-${attempt}`, items: [{ productId, quantity: 1 }] },
        { timeoutMs: 5000 },
      );
      return { afterReadyMs: performance.now() - since, refused, firstRefusal };
    } catch (error) {
      refused++;
      const failure = ConnectError.from(error);
      firstRefusal ??= `${codeName(failure.code)}: ${failure.rawMessage}`;
      await sleep(50);
    }
  }
  return { afterReadyMs: Number.NaN, refused, firstRefusal };
}
