import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { int64 } from "@shopmesh/chassis/int64-column";

/** The catalog. Ids are UUIDv7, so ordering by id is ordering by creation. */
export const products = sqliteTable("products", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  description: text("description").notNull(),
  /** Unit price in the currency's minor unit; read it exactly (see ProductStore). */
  priceMinor: int64("price_minor").notNull(),
  /** ISO 4217 code, upper case. */
  currency: text("currency").notNull(),
  /** Milliseconds since the epoch. */
  createdAt: integer("created_at").notNull(),
});

export type ProductRow = typeof products.$inferSelect;

/** Events waiting for readers, written in the same transaction as each change (see the chassis). */
export { outbox } from "@shopmesh/chassis/outbox-table";
