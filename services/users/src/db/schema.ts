import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** Customer accounts. Emails are stored normalised (trimmed, lower-case). */
export const users = sqliteTable("users", {
  id: text("id").primaryKey(),
  email: text("email").notNull().unique(),
  displayName: text("display_name").notNull(),
  /** `scrypt$N$r$p$salt$key`, salt and key base64. */
  passwordHash: text("password_hash").notNull(),
  role: text("role", { enum: ["customer", "admin"] }).notNull(),
  /** Milliseconds since the epoch. */
  createdAt: integer("created_at").notNull(),
});

export type UserRow = typeof users.$inferSelect;

/** An account without its password hash: what a User message shows, and all that reads by id hold. */
export type PublicUserRow = Omit<UserRow, "passwordHash">;

/** Events waiting for readers, written in the same transaction as each change (see the chassis). */
export { outbox } from "@shopmesh/chassis/outbox-table";
