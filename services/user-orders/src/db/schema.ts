import { index, integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { int64 } from "@shopmesh/chassis/int64-column";

// The projection: just what the EVENTUAL view needs, copied from the users,
// products and orders event streams. user-orders owns this database; the
// services it copies from never see it. Rows from different streams arrive
// in any order, so no table references another. Amounts are int64 minor
// units, read exactly (see ProjectionStore).

/** Profiles, from UserRegistered. */
export const users = sqliteTable("users", {
  id: text("id").primaryKey(),
  email: text("email").notNull(),
  displayName: text("display_name").notNull(),
});

/** The catalog as it now is, from ProductCreated and ProductChanged. */
export const products = sqliteTable("products", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  description: text("description").notNull(),
  priceMinor: int64("price_minor").notNull(),
  currency: text("currency").notNull(),
});

/** Placed orders, from OrderPlaced. Ids are UUIDv7: ordering by id is ordering by time. */
export const orders = sqliteTable(
  "orders",
  {
    id: text("id").primaryKey(),
    userId: text("user_id").notNull(),
    currency: text("currency").notNull(),
    totalMinor: int64("total_minor").notNull(),
    /** Milliseconds since the epoch. */
    createdAt: integer("created_at").notNull(),
  },
  (table) => [index("orders_user_newest").on(table.userId, table.id)],
);

/** The lines of each order, with the unit price paid. */
export const orderLines = sqliteTable(
  "order_lines",
  {
    orderId: text("order_id").notNull(),
    lineNo: integer("line_no").notNull(),
    productId: text("product_id").notNull(),
    quantity: integer("quantity").notNull(),
    unitPriceMinor: int64("unit_price_minor").notNull(),
  },
  (table) => [primaryKey({ columns: [table.orderId, table.lineNo] })],
);

/**
 * How far each stream has been applied. Written in the same transaction as
 * the events it counts, so after a crash the projection resumes exactly
 * after the last event it kept, and an event delivered again is skipped.
 */
export const streamPositions = sqliteTable("stream_positions", {
  /** users, products or orders. */
  stream: text("stream").primaryKey(),
  /** Sequence number of the last event applied. */
  sequence: integer("sequence").notNull(),
  /** When that event was committed at its source, milliseconds since the epoch. */
  eventTime: integer("event_time").notNull(),
  /** When it was applied here, milliseconds since the epoch. */
  appliedAt: integer("applied_at").notNull(),
});

export type ProjectedUser = typeof users.$inferSelect;
export type ProjectedProduct = typeof products.$inferSelect;
export type ProjectedOrder = typeof orders.$inferSelect;
export type ProjectedOrderLine = typeof orderLines.$inferSelect;
