import { timestampMs } from "@bufbuild/protobuf/wkt";
import type Database from "better-sqlite3";
import { inEventSpan, PageIdsCache, prepareExactRows, RowCache, tracingEnabled } from "@shopmesh/chassis";
import type { Order } from "@shopmesh/sdk/orders/v1";
import type { Product } from "@shopmesh/sdk/products/v1";
import type { User } from "@shopmesh/sdk/users/v1";
import type { ProjectedOrder, ProjectedOrderLine, ProjectedProduct, ProjectedUser } from "../db/schema.js";
import type { DependencyName } from "../dependencies.js";
import type { StreamEvents } from "./event-source.js";

/** Where a stream's application stands. */
export interface StreamPosition {
  sequence: number;
  /** Commit time of the last applied event at its source (ms since the epoch), 0 before any. */
  eventTime: number;
  /** When it was applied here (ms since the epoch), 0 before any. */
  appliedAt: number;
}

/** What one applyBatch call did. */
export interface AppliedBatch {
  position: StreamPosition;
  applied: number;
  /** Events skipped because the projection already had them. */
  skipped: number;
  /** Sequence numbers missing between applied events (0 from a well-behaved source). */
  missing: number;
}

/** Options for {@link ProjectionStore}. */
export interface ProjectionStoreOptions {
  /**
   * Orders (with their lines), products and users kept in memory, up to
   * this many of each, and as many ids of users' pages
   * (PROJECTION_CACHE_ENTRIES); default 10,000; 0: none.
   */
  cacheEntries?: number;
}

/** An order with its lines, as the view reads it. */
export interface ProjectedOrderWithLines extends ProjectedOrder {
  lines: Omit<ProjectedOrderLine, "orderId">[];
}

/**
 * The projection's data access: applying events and reading views. All
 * statements are prepared once on the better-sqlite3 handle. Amounts are
 * bound as the events' bigints and read back as bigints, so an amount near
 * the int64 maximum reaches an EVENTUAL view as its source wrote it.
 *
 * Reads go through {@link RowCache}s, since the SQLite reads
 * were the largest part of an EVENTUAL view's server time
 * (docs/performance-notes.md). This store is the projection's only writer:
 * a placed order never changes, so an order is cached for good, and a user
 * or product is dropped from its cache when an event writes it, so the next
 * read takes the new row (or the old one, when the batch rolled back). A
 * user's page ids are kept too ({@link PageIdsCache}), and dropped when an
 * order of theirs is applied. Each object a cache hands out stays the same
 * until its row changes, and is never to be modified.
 */
export class ProjectionStore {
  readonly #sqlite: Database.Database;
  readonly #position;
  readonly #savePosition;
  readonly #upsertUser;
  readonly #upsertProduct;
  readonly #insertOrder;
  readonly #insertLine;
  readonly #user;
  readonly #firstPage;
  readonly #pageBefore;
  readonly #ordersByIds;
  readonly #linesOf;
  readonly #productsOf;
  readonly #orders: RowCache<ProjectedOrderWithLines>;
  readonly #products: RowCache<ProjectedProduct>;
  readonly #users: RowCache<ProjectedUser>;
  readonly #pageIds: PageIdsCache;

  constructor(sqlite: Database.Database, options: ProjectionStoreOptions = {}) {
    this.#sqlite = sqlite;
    this.#position = sqlite.prepare<[stream: string], StreamPosition>(
      "SELECT sequence, event_time AS eventTime, applied_at AS appliedAt FROM stream_positions WHERE stream = ?",
    );
    this.#savePosition = sqlite.prepare<[stream: string, sequence: number, eventTime: number, appliedAt: number]>(
      `INSERT INTO stream_positions (stream, sequence, event_time, applied_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (stream) DO UPDATE SET sequence = excluded.sequence, event_time = excluded.event_time, applied_at = excluded.applied_at`,
    );
    this.#upsertUser = sqlite.prepare<[id: string, email: string, displayName: string]>(
      `INSERT INTO users (id, email, display_name) VALUES (?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET email = excluded.email, display_name = excluded.display_name`,
    );
    this.#upsertProduct = sqlite.prepare<
      [id: string, name: string, description: string, priceMinor: bigint, currency: string]
    >(
      `INSERT INTO products (id, name, description, price_minor, currency) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description,
         price_minor = excluded.price_minor, currency = excluded.currency`,
    );
    this.#insertOrder = sqlite.prepare<
      [id: string, userId: string, currency: string, totalMinor: bigint, createdAt: number]
    >("INSERT OR IGNORE INTO orders (id, user_id, currency, total_minor, created_at) VALUES (?, ?, ?, ?, ?)");
    this.#insertLine = sqlite.prepare<
      [orderId: string, lineNo: number, productId: string, quantity: number, unitPriceMinor: bigint]
    >(
      "INSERT OR IGNORE INTO order_lines (order_id, line_no, product_id, quantity, unit_price_minor) VALUES (?, ?, ?, ?, ?)",
    );
    this.#user = sqlite.prepare<[id: string], ProjectedUser>(
      "SELECT id, email, display_name AS displayName FROM users WHERE id = ?",
    );
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
    this.#ordersByIds = prepareExactRows<[orderIds: string], ProjectedOrder>(
      sqlite,
      `SELECT id, user_id AS userId, currency, total_minor AS totalMinor, created_at AS createdAt
         FROM orders WHERE id IN (SELECT value FROM json_each(?))`,
      ["totalMinor"],
    );
    this.#linesOf = prepareExactRows<[orderIds: string], ProjectedOrderLine>(
      sqlite,
      `SELECT order_id AS orderId, line_no AS lineNo, product_id AS productId, quantity, unit_price_minor AS unitPriceMinor
         FROM order_lines WHERE order_id IN (SELECT value FROM json_each(?)) ORDER BY order_id, line_no`,
      ["unitPriceMinor"],
    );
    this.#productsOf = prepareExactRows<[productIds: string], ProjectedProduct>(
      sqlite,
      `SELECT id, name, description, price_minor AS priceMinor, currency
         FROM products WHERE id IN (SELECT value FROM json_each(?))`,
      ["priceMinor"],
    );
    const entries = options.cacheEntries ?? 10_000;
    this.#orders = new RowCache({
      entries,
      idOf: (order) => order.id,
      readMany: (ids) => this.#withLines(this.#ordersByIds.all(JSON.stringify(ids))),
    });
    this.#products = new RowCache({
      entries,
      idOf: (product) => product.id,
      readMany: (ids) => this.#productsOf.all(JSON.stringify(ids)),
    });
    this.#users = new RowCache({
      entries,
      idOf: (user) => user.id,
      readMany: (ids) => ids.flatMap((id) => this.#user.get(id) ?? []),
    });
    this.#pageIds = new PageIdsCache({ ids: entries });
  }

  /** The stream's position; sequence 0 before its first event. */
  position(stream: DependencyName): StreamPosition {
    return this.#position.get(stream) ?? { sequence: 0, eventTime: 0, appliedAt: 0 };
  }

  /**
   * Applies events of one stream, in order, and moves the stream's position
   * to the last of them, all in one transaction: either every change and the
   * new position are kept, or none. Events at or below the stored position
   * are skipped, so delivering an event twice changes nothing.
   *
   * With tracing on, applying each event is a span ("apply OrderPlaced")
   * with a link to the write that produced the event, when the event carries
   * its trace context: that write's trace leads to the projection's update.
   */
  applyBatch<S extends DependencyName>(stream: S, events: readonly StreamEvents[S][]): AppliedBatch {
    const traced = tracingEnabled();
    return this.#sqlite.transaction(() => {
      let position = this.position(stream);
      let applied = 0;
      let skipped = 0;
      let missing = 0;
      for (const event of events) {
        const sequence = Number(event.sequence);
        if (sequence <= position.sequence) {
          skipped++;
          continue;
        }
        missing += sequence - position.sequence - 1;
        if (traced) this.#applyTraced(stream, event, sequence);
        else this.#apply(stream, event);
        applied++;
        position = { sequence, eventTime: event.occurTime ? timestampMs(event.occurTime) : 0, appliedAt: Date.now() };
      }
      if (applied > 0) this.#savePosition.run(stream, position.sequence, position.eventTime, position.appliedAt);
      return { position, applied, skipped, missing };
    })();
  }

  #applyTraced<S extends DependencyName>(stream: S, event: StreamEvents[S], sequence: number): void {
    const kind = event.kind.case === undefined ? "unknown event" : upperFirst(event.kind.case);
    inEventSpan(
      `apply ${kind}`,
      { "shopmesh.event.stream": stream, "shopmesh.event.sequence": sequence, "shopmesh.event.kind": kind },
      event.traceContext,
      () => this.#apply(stream, event),
    );
  }

  #apply<S extends DependencyName>(_stream: S, event: StreamEvents[S]): void {
    const kind = event.kind;
    switch (kind.case) {
      case "userRegistered":
        if (kind.value.user) this.#putUser(kind.value.user);
        return;
      case "productCreated":
      case "productChanged":
        if (kind.value.product) this.#putProduct(kind.value.product);
        return;
      case "orderPlaced":
        if (kind.value.order) this.#putOrder(kind.value.order);
        return;
      default:
        // An event kind this build does not know yet (a newer producer): its
        // position still advances; the view simply lacks what it would add.
        return;
    }
  }

  #putUser(user: User): void {
    this.#users.delete(user.id);
    this.#upsertUser.run(user.id, user.email, user.displayName);
  }

  #putProduct(product: Product): void {
    this.#products.delete(product.id);
    this.#upsertProduct.run(
      product.id,
      product.name,
      product.description,
      product.price?.minorUnits ?? 0n,
      product.price?.currencyCode ?? "",
    );
  }

  #putOrder(order: Order): void {
    this.#pageIds.drop(order.userId);
    const currency = order.total?.currencyCode ?? "";
    const createdAt = order.createTime ? timestampMs(order.createTime) : 0;
    this.#insertOrder.run(order.id, order.userId, currency, order.total?.minorUnits ?? 0n, createdAt);
    order.lines.forEach((line, lineNo) => {
      this.#insertLine.run(order.id, lineNo, line.productId, line.quantity, line.unitPrice?.minorUnits ?? 0n);
    });
  }

  user(id: string): ProjectedUser | undefined {
    return this.#users.get(id);
  }

  /**
   * Up to `pageSize` of a user's orders older than `beforeId`, newest first,
   * with their lines, and whether older ones remain (one id more is read to
   * tell).
   */
  ordersPage(
    userId: string,
    beforeId: string | undefined,
    pageSize: number,
  ): { orders: ProjectedOrderWithLines[]; more: boolean } {
    const limit = pageSize + 1;
    const found = this.#pageIds.get(userId, limit, beforeId, () =>
      beforeId === undefined ? this.#firstPage.all(userId, limit) : this.#pageBefore.all(userId, beforeId, limit),
    );
    const more = found.length > pageSize;
    return { orders: this.#orders.getInOrder(more ? found.slice(0, pageSize) : found), more };
  }

  /** `rows` with their lines. */
  #withLines(rows: ProjectedOrder[]): ProjectedOrderWithLines[] {
    const byOrder = new Map<string, ProjectedOrderWithLines>();
    for (const row of rows) byOrder.set(row.id, { ...row, lines: [] });
    for (const { orderId, ...line } of this.#linesOf.all(JSON.stringify(rows.map((row) => row.id))))
      byOrder.get(orderId)?.lines.push(line);
    return [...byOrder.values()];
  }

  /** The products among `ids` that the projection holds, by id. */
  products(ids: readonly string[]): Map<string, ProjectedProduct> {
    return this.#products.getMany(ids);
  }
}

/** An event kind's name as the contract spells its message: orderPlaced becomes OrderPlaced. */
function upperFirst(name: string): string {
  return name.charAt(0).toUpperCase() + name.slice(1);
}
