import { and, asc, desc, eq, inArray, lt, sql } from "drizzle-orm";
import type { BetterSQLite3Database } from "drizzle-orm/better-sqlite3";
import { newId } from "@shopmesh/chassis";
import * as schema from "./db/schema.js";
import { orderLines, orders, type OrderLineRow, type OrderRow } from "./db/schema.js";

export type OrdersDb = BetterSQLite3Database<typeof schema>;

/** An order with its lines. */
export interface StoredOrder extends OrderRow {
  lines: Omit<OrderLineRow, "orderId">[];
}

/** An order to write, priced by the caller. */
export interface NewOrder {
  userId: string;
  requestId: string;
  currency: string;
  lines: { productId: string; quantity: number; unitPriceMinor: number }[];
}

/** The orders service's data access; the only code that touches orders.sqlite. */
export class OrderStore {
  // ListOrders' two queries are prepared once instead of rebuilt on every call.
  readonly #firstPage;
  readonly #pageBefore;

  constructor(private readonly db: OrdersDb) {
    const mine = eq(orders.userId, sql.placeholder("userId"));
    const newestFirst = (where: ReturnType<typeof and>) =>
      db.select().from(orders).where(where).orderBy(desc(orders.id)).limit(sql.placeholder("limit")).prepare();
    this.#firstPage = newestFirst(mine);
    this.#pageBefore = newestFirst(and(mine, lt(orders.id, sql.placeholder("before"))));
  }

  /**
   * Writes an order and its lines in one transaction. When the user already
   * placed an order with this request id, writes nothing and returns that
   * order with `created: false`.
   */
  place(order: NewOrder): { order: StoredOrder; created: boolean } {
    return this.db.transaction((tx) => {
      const row: OrderRow = {
        id: newId(),
        userId: order.userId,
        requestId: order.requestId,
        currency: order.currency,
        totalMinor: order.lines.reduce((sum, line) => sum + line.quantity * line.unitPriceMinor, 0),
        createdAt: Date.now(),
      };
      const inserted = tx
        .insert(orders)
        .values(row)
        .onConflictDoNothing({ target: [orders.userId, orders.requestId] })
        .returning({ id: orders.id })
        .all();
      if (inserted.length === 0) {
        const existing = this.#byRequest(tx, order.userId, order.requestId);
        if (!existing) throw new Error("order vanished inside its own transaction");
        return { order: existing, created: false };
      }
      const lines = order.lines.map((line, lineNo) => ({ orderId: row.id, lineNo, ...line }));
      tx.insert(orderLines).values(lines).run();
      return { order: { ...row, lines: lines.map(({ orderId: _, ...line }) => line) }, created: true };
    });
  }

  byRequest(userId: string, requestId: string): StoredOrder | undefined {
    return this.#byRequest(this.db, userId, requestId);
  }

  byId(id: string): StoredOrder | undefined {
    const row = this.db.select().from(orders).where(eq(orders.id, id)).get();
    return row ? this.#withLines(this.db, [row])[0] : undefined;
  }

  /** Up to `limit` of a user's orders older than `beforeId`, newest first. */
  pageForUser(userId: string, beforeId: string | undefined, limit: number): StoredOrder[] {
    const rows =
      beforeId === undefined
        ? this.#firstPage.all({ userId, limit })
        : this.#pageBefore.all({ userId, before: beforeId, limit });
    return this.#withLines(this.db, rows);
  }

  #byRequest(db: Pick<OrdersDb, "select">, userId: string, requestId: string): StoredOrder | undefined {
    const row = db
      .select()
      .from(orders)
      .where(and(eq(orders.userId, userId), eq(orders.requestId, requestId)))
      .get();
    return row ? this.#withLines(db, [row])[0] : undefined;
  }

  #withLines(db: Pick<OrdersDb, "select">, rows: OrderRow[]): StoredOrder[] {
    if (rows.length === 0) return [];
    const lines = db
      .select()
      .from(orderLines)
      .where(
        inArray(
          orderLines.orderId,
          rows.map((row) => row.id),
        ),
      )
      .orderBy(asc(orderLines.orderId), asc(orderLines.lineNo))
      .all();
    const byOrder = new Map<string, StoredOrder["lines"]>();
    for (const { orderId, ...line } of lines) {
      const list = byOrder.get(orderId) ?? [];
      list.push(line);
      byOrder.set(orderId, list);
    }
    return rows.map((row) => ({ ...row, lines: byOrder.get(row.id) ?? [] }));
  }
}
