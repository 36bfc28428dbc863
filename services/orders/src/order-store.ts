import type { MessageInitShape } from "@bufbuild/protobuf";
import type { BetterSQLite3Database } from "drizzle-orm/better-sqlite3";
import {
  EventLog,
  newId,
  PageIdsCache,
  prepareExactRows,
  RowCache,
  type EventStreamOptions,
  type OpenDatabase,
} from "@shopmesh/chassis";
import { OrderEventSchema } from "@shopmesh/sdk/orders/v1";
import { toOrder } from "./order-messages.js";
import type * as schema from "./db/schema.js";
import { orderLines, orders, type OrderLineRow, type OrderRow } from "./db/schema.js";

export type OrdersDb = BetterSQLite3Database<typeof schema>;

/** An order with its lines. */
export interface StoredOrder extends OrderRow {
  lines: Omit<OrderLineRow, "orderId">[];
}

/** An order to write, priced and totalled by the caller. */
export interface NewOrder {
  userId: string;
  requestId: string;
  /** See request-fingerprint.ts. */
  requestFingerprint: string;
  currency: string;
  totalMinor: bigint;
  lines: { productId: string; quantity: number; unitPriceMinor: bigint }[];
}

/** Options for {@link OrderStore}. */
export interface OrderStoreOptions {
  /** Event streams' limits (see the chassis). */
  streams?: EventStreamOptions;
  /**
   * Orders kept in memory with their lines (ORDER_CACHE_ENTRIES), and as
   * many ids of users' pages; default 10,000; 0: none.
   */
  cacheEntries?: number;
}

/**
 * The orders service's data access; the only code that touches orders.sqlite.
 * A placed order appends OrderPlaced to the outbox in the same transaction.
 * Amounts are int64 minor units held as bigints; every read of them goes
 * through a statement that returns them exactly, since drizzle's reads would
 * round any amount past 2^53.
 *
 * A placed order never changes, so orders read with their lines are kept in
 * a {@link RowCache}, and a page reads only its ids from the index before
 * reading the orders the cache does not hold: the page's two statements were
 * the largest part of ListOrders' server time (docs/performance-notes.md).
 * The ids of a user's pages are kept too ({@link PageIdsCache}), until the
 * user places an order: then a page of cached orders runs no statement.
 */
export class OrderStore {
  readonly events: EventLog<typeof OrderEventSchema>;
  // Reads are prepared once on the better-sqlite3 handle: drizzle's per-call
  // query building (and, for the lines, per-call preparing) and row mapping
  // were over a fifth of ListOrders' CPU, and its reads are not exact.
  readonly #firstPage;
  readonly #pageBefore;
  /** The orders whose ids are in one JSON array. */
  readonly #ordersByIds;
  readonly #orderById;
  readonly #orderByRequest;
  readonly #everyOrder;
  /** The lines of any set of orders, their ids passed as one JSON array. */
  readonly #linesOf;
  readonly #cached: RowCache<StoredOrder>;
  readonly #pageIds: PageIdsCache;

  private readonly db: OrdersDb;

  constructor(database: OpenDatabase<typeof schema>, options: OrderStoreOptions = {}) {
    const { db, sqlite } = database;
    this.db = db;
    this.events = new EventLog(sqlite, OrderEventSchema, options.streams);
    const selectOrders = `SELECT id, user_id AS userId, request_id AS requestId, request_fingerprint AS requestFingerprint,
      currency, total_minor AS totalMinor, created_at AS createdAt FROM orders`;
    const amounts = ["totalMinor"] as const;
    // Only the ids, which the (user_id, id) index holds: no table row is read for them.
    this.#firstPage = sqlite
      .prepare<[userId: string, limit: number], string>(
        "SELECT id FROM orders WHERE user_id = ? ORDER BY id DESC LIMIT ?",
      )
      .pluck();
    this.#pageBefore = sqlite
      .prepare<[userId: string, before: string, limit: number], string>(
        "SELECT id FROM orders WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
      )
      .pluck();
    this.#ordersByIds = prepareExactRows<[ids: string], OrderRow>(
      sqlite,
      `${selectOrders} WHERE id IN (SELECT value FROM json_each(?))`,
      amounts,
    );
    this.#orderById = prepareExactRows<[id: string], OrderRow>(sqlite, `${selectOrders} WHERE id = ?`, amounts);
    this.#orderByRequest = prepareExactRows<[userId: string, requestId: string], OrderRow>(
      sqlite,
      `${selectOrders} WHERE user_id = ? AND request_id = ?`,
      amounts,
    );
    this.#everyOrder = prepareExactRows<[], OrderRow>(sqlite, `${selectOrders} ORDER BY id`, amounts);
    this.#linesOf = prepareExactRows<[orderIds: string], OrderLineRow>(
      sqlite,
      `SELECT order_id AS orderId, line_no AS lineNo, product_id AS productId, quantity, unit_price_minor AS unitPriceMinor
         FROM order_lines WHERE order_id IN (SELECT value FROM json_each(?)) ORDER BY order_id, line_no`,
      ["unitPriceMinor"],
    );
    this.#cached = new RowCache({
      entries: options.cacheEntries ?? 10_000,
      idOf: (order) => order.id,
      readMany: (ids) => this.#withLines(this.#ordersByIds.all(JSON.stringify(ids))),
      readOne: (id) => {
        const row = this.#orderById.get(id);
        return row && this.#withLines([row])[0];
      },
    });
    this.#pageIds = new PageIdsCache({ ids: options.cacheEntries ?? 10_000 });
  }

  /**
   * Writes an order and its lines in one transaction. When the user already
   * placed an order with this request id, writes nothing and returns that
   * order with `created: false`, whatever it holds: telling a retry from a
   * different request is the caller's (see request-fingerprint.ts).
   */
  place(order: NewOrder): { order: StoredOrder; created: boolean } {
    const result = this.db.transaction((tx) => {
      const row: OrderRow = {
        id: newId(),
        userId: order.userId,
        requestId: order.requestId,
        requestFingerprint: order.requestFingerprint,
        currency: order.currency,
        totalMinor: order.totalMinor,
        createdAt: Date.now(),
      };
      const inserted = tx
        .insert(orders)
        .values(row)
        .onConflictDoNothing({ target: [orders.userId, orders.requestId] })
        .returning({ id: orders.id })
        .all();
      if (inserted.length === 0) {
        const existing = this.byRequest(order.userId, order.requestId);
        if (!existing) throw new Error("order vanished inside its own transaction");
        return { order: existing, created: false };
      }
      const lines = order.lines.map((line, lineNo) => ({ orderId: row.id, lineNo, ...line }));
      tx.insert(orderLines).values(lines).run();
      const placed: StoredOrder = { ...row, lines: lines.map(({ orderId: _, ...line }) => line) };
      this.events.append({ kind: { case: "orderPlaced", value: { order: toOrder(placed) } } }, row.createdAt);
      return { order: placed, created: true };
    });
    if (result.created) this.#pageIds.drop(order.userId);
    return result;
  }

  /**
   * Records an OrderPlaced event for every order when the outbox is empty
   * but the table is not: a database from before the outbox existed then
   * still gives readers every order. Returns how many it wrote.
   */
  backfillEvents(): number {
    return this.events.backfill(() => this.#placedHistory());
  }

  /** An OrderPlaced per stored order, oldest first; lines read 500 orders at a time. */
  *#placedHistory(): Generator<{ event: MessageInitShape<typeof OrderEventSchema>; occurredAt: number }> {
    const rows = this.#everyOrder.all();
    for (let start = 0; start < rows.length; start += 500) {
      for (const order of this.#withLines(rows.slice(start, start + 500))) {
        yield {
          event: { kind: { case: "orderPlaced", value: { order: toOrder(order) } } },
          occurredAt: order.createdAt,
        };
      }
    }
  }

  /** The user's order placed with this request id (compared exactly), if any. */
  byRequest(userId: string, requestId: string): StoredOrder | undefined {
    const row = this.#orderByRequest.get(userId, requestId);
    return row ? this.#withLines([row])[0] : undefined;
  }

  byId(id: string): StoredOrder | undefined {
    return this.#cached.get(id);
  }

  /** Up to `limit` of a user's orders older than `beforeId`, newest first. */
  pageForUser(userId: string, beforeId: string | undefined, limit: number): StoredOrder[] {
    const ids = this.#pageIds.get(userId, limit, beforeId, () =>
      beforeId === undefined ? this.#firstPage.all(userId, limit) : this.#pageBefore.all(userId, beforeId, limit),
    );
    return this.#cached.getInOrder(ids);
  }

  /**
   * `rows` with their lines. Also right inside place()'s transaction:
   * better-sqlite3 has one connection, so the statement sees its writes.
   */
  #withLines(rows: OrderRow[]): StoredOrder[] {
    if (rows.length === 0) return [];
    const lines = this.#linesOf.all(JSON.stringify(rows.map((row) => row.id)));
    const byOrder = new Map<string, StoredOrder["lines"]>();
    for (const line of lines) {
      const { orderId } = line;
      const entry = {
        lineNo: line.lineNo,
        productId: line.productId,
        quantity: line.quantity,
        unitPriceMinor: line.unitPriceMinor,
      };
      const list = byOrder.get(orderId);
      if (list) list.push(entry);
      else byOrder.set(orderId, [entry]);
    }
    return rows.map((row) => ({ ...row, lines: byOrder.get(row.id) ?? [] }));
  }
}
