import { blob, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * The transactional outbox every event-producing service keeps beside its own
 * tables. A change and the event describing it are written in one SQLite
 * transaction, so an event exists exactly when its change does.
 * `AUTOINCREMENT` makes sequence numbers strictly increasing and never
 * reused, even after the newest rows are deleted.
 */
export const outbox = sqliteTable("outbox", {
  sequence: integer("sequence").primaryKey({ autoIncrement: true }),
  /** The event's kind (the envelope's oneof case), for people reading the table. */
  kind: text("kind").notNull(),
  /** Commit time, milliseconds since the epoch. */
  occurredAt: integer("occurred_at").notNull(),
  /** The event envelope, Protobuf binary, without its sequence number. */
  payload: blob("payload", { mode: "buffer" }).notNull(),
  /**
   * The W3C trace context of the write that appended the event (its
   * `traceparent` and `tracestate` headers), null when that write was not
   * traced; the envelope's trace_context when the event is read.
   */
  traceparent: text("traceparent"),
  tracestate: text("tracestate"),
});
