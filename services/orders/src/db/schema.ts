import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { int64 } from "@shopmesh/chassis/int64-column";

/**
 * Placed orders. `(user_id, request_id)` is unique: a retried CreateOrder finds
 * the order its first attempt wrote instead of writing a second one, and
 * `request_fingerprint` tells a retry from a different request that reuses
 * the id. Amounts are int64 minor units, read exactly (see OrderStore).
 */
export const orders = sqliteTable(
  "orders",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").notNull(),
    requestId: text("request_id").notNull(),
    /**
     * Hash of the request's items (see request-fingerprint.ts). Null in rows
     * written before it was kept: their lines record the items exactly, so
     * the fingerprint is computed from them instead.
     */
    requestFingerprint: text("request_fingerprint"),
    currency: text("currency").notNull(),
    totalMinor: int64("total_minor").notNull(),
    /** Milliseconds since the epoch. */
    createdAt: integer("created_at").notNull(),
  },
  (table) => [
    uniqueIndex("orders_user_request_unique").on(table.userId, table.requestId),
    index("orders_user_newest").on(table.userId, table.id),
  ],
);

/** What each order bought, with the unit price copied from the catalog at the time. */
export const orderLines = sqliteTable(
  "order_lines",
  {
    orderId: text("order_id")
      .notNull()
      .references(() => orders.id, { onDelete: "cascade" }),
    lineNo: integer("line_no").notNull(),
    productId: text("product_id").notNull(),
    quantity: integer("quantity").notNull(),
    unitPriceMinor: int64("unit_price_minor").notNull(),
  },
  (table) => [primaryKey({ columns: [table.orderId, table.lineNo] })],
);

export type OrderRow = typeof orders.$inferSelect;
export type OrderLineRow = typeof orderLines.$inferSelect;

/** Events waiting for readers, written in the same transaction as each change (see the chassis). */
export { outbox } from "@shopmesh/chassis/outbox-table";
