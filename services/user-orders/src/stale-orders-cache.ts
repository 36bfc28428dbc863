import type { ListOrdersResponse } from "@shopmesh/sdk/orders/v1";

/** Which page of whose orders: a kept copy answers only the exact same question. */
export interface OrdersPageKey {
  userId: string;
  pageSize: number;
  pageToken: string;
}

/** A kept orders page and when it was fetched (epoch milliseconds). */
export interface KeptOrdersPage {
  page: ListOrdersResponse;
  fetchedAt: number;
}

/**
 * The last good answer of orders.ListOrders for each recently asked page, so
 * that the view can still be served, marked stale, while orders is down. It
 * holds at most `maxEntries` pages, dropping the least recently used, and
 * never serves a copy older than `maxAgeMs`. Callers are authorised before
 * they reach it, and the key includes the user, so it cannot leak one user's
 * orders to another.
 */
export class StaleOrdersCache {
  readonly #pages = new Map<string, KeptOrdersPage>();

  constructor(
    readonly maxEntries: number,
    readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.#pages.size;
  }

  keep(key: OrdersPageKey, page: ListOrdersResponse): void {
    if (this.maxEntries <= 0) return;
    const id = keyOf(key);
    this.#pages.delete(id);
    this.#pages.set(id, { page, fetchedAt: this.now() });
    // A Map iterates in insertion order, so the first key is the least recently used.
    while (this.#pages.size > this.maxEntries) this.#pages.delete(this.#pages.keys().next().value!);
  }

  /** The kept copy of this page, when there is one young enough. */
  find(key: OrdersPageKey): KeptOrdersPage | undefined {
    const id = keyOf(key);
    const kept = this.#pages.get(id);
    if (!kept) return undefined;
    if (this.now() - kept.fetchedAt > this.maxAgeMs) {
      this.#pages.delete(id);
      return undefined;
    }
    this.#pages.delete(id);
    this.#pages.set(id, kept);
    return kept;
  }
}

function keyOf(key: OrdersPageKey): string {
  return JSON.stringify([key.userId, key.pageSize, key.pageToken]);
}
