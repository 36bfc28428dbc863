import { eq } from "drizzle-orm";
import type { BetterSQLite3Database } from "drizzle-orm/better-sqlite3";
import {
  EventLog,
  newId,
  prepareExactRows,
  RowCache,
  type EventStreamOptions,
  type OpenDatabase,
} from "@shopmesh/chassis";
import { ProductEventSchema } from "@shopmesh/sdk/products/v1";
import type * as schema from "./db/schema.js";
import { products, type ProductRow } from "./db/schema.js";
import { toProduct } from "./product-messages.js";

export type ProductsDb = BetterSQLite3Database<typeof schema>;

/** What UpdateProduct may change; unset fields keep their value. */
export type ProductChange = Partial<Pick<ProductRow, "name" | "description" | "priceMinor" | "currency">>;

/** Options for {@link ProductStore}. */
export interface ProductStoreOptions {
  /** Event stream limits (batch size, heartbeat) of the outbox's readers. */
  streams?: EventStreamOptions;
  /** Most products kept in memory for reads by id; 0 turns the cache off. Default 10,000. */
  cacheEntries?: number;
}

/**
 * The products service's data access; the only code that touches
 * products.sqlite. Every change appends its event (ProductCreated,
 * ProductChanged) to the outbox in the same transaction.
 *
 * Reads by id go through a {@link RowCache}. It cannot go stale:
 * this process is the only writer of its database, and every write replaces
 * the cached row once its transaction has committed. The SQLite point read is
 * a large part of GetProduct's server time, and the catalog is read far more
 * often than it is written (docs/performance-notes.md).
 */
export class ProductStore {
  readonly events: EventLog<typeof ProductEventSchema>;
  // Reads are prepared once on the better-sqlite3 handle: drizzle's prepared
  // query still maps every row through its column list, which showed in
  // GetProduct's profile, and it would round a price past 2^53; the aliases
  // give the row its schema shape directly, the price as an exact bigint.
  readonly #byId;
  /** The products whose ids are in one JSON array. */
  readonly #byIds;
  readonly #firstPage;
  readonly #pageAfter;
  readonly #everyProduct;
  readonly #cached: RowCache<ProductRow>;

  private readonly db: ProductsDb;

  constructor(database: OpenDatabase<typeof schema>, options: ProductStoreOptions = {}) {
    const { db, sqlite } = database;
    this.db = db;
    this.events = new EventLog(sqlite, ProductEventSchema, options.streams);
    const selectProducts =
      "SELECT id, name, description, price_minor AS priceMinor, currency, created_at AS createdAt FROM products";
    const amounts = ["priceMinor"] as const;
    this.#byId = prepareExactRows<[id: string], ProductRow>(sqlite, `${selectProducts} WHERE id = ?`, amounts);
    this.#byIds = prepareExactRows<[ids: string], ProductRow>(
      sqlite,
      `${selectProducts} WHERE id IN (SELECT value FROM json_each(?))`,
      amounts,
    );
    this.#firstPage = prepareExactRows<[limit: number], ProductRow>(
      sqlite,
      `${selectProducts} ORDER BY id LIMIT ?`,
      amounts,
    );
    this.#pageAfter = prepareExactRows<[afterId: string, limit: number], ProductRow>(
      sqlite,
      `${selectProducts} WHERE id > ? ORDER BY id LIMIT ?`,
      amounts,
    );
    this.#everyProduct = prepareExactRows<[], ProductRow>(sqlite, `${selectProducts} ORDER BY id`, amounts);
    this.#cached = new RowCache({
      entries: options.cacheEntries ?? 10_000,
      idOf: (row) => row.id,
      readMany: (ids) => this.#byIds.all(JSON.stringify(ids)),
      readOne: (id) => this.#byId.get(id),
    });
  }

  create(product: Omit<ProductRow, "id" | "createdAt">): ProductRow {
    const created = this.db.transaction((tx) => {
      const row: ProductRow = { id: newId(), createdAt: Date.now(), ...product };
      tx.insert(products).values(row).run();
      this.events.append({ kind: { case: "productCreated", value: { product: toProduct(row) } } }, row.createdAt);
      return row;
    });
    return this.#remember(created);
  }

  /**
   * Applies a change; returns the product as it now is, or undefined when
   * there is no such product. A change that changes nothing records no event.
   */
  update(id: string, change: ProductChange): ProductRow | undefined {
    const updated = this.db.transaction((tx) => {
      const before = this.#byId.get(id);
      if (!before) return undefined;
      const keys = Object.keys(change) as (keyof ProductChange)[];
      if (keys.every((key) => before[key] === change[key])) return before;
      tx.update(products).set(change).where(eq(products.id, id)).run();
      const row: ProductRow = { ...before, ...change };
      this.events.append({ kind: { case: "productChanged", value: { product: toProduct(row) } } });
      return row;
    });
    return updated && this.#remember(updated);
  }

  /**
   * Records a ProductCreated event for every product when the outbox is
   * empty but the catalog is not: a database from before the outbox existed
   * then still gives readers the whole catalog. Returns how many it wrote.
   */
  backfillEvents(): number {
    return this.events.backfill(() =>
      this.#everyProduct.all().map((row) => ({
        event: { kind: { case: "productCreated", value: { product: toProduct(row) } } },
        occurredAt: row.createdAt,
      })),
    );
  }

  byId(id: string): ProductRow | undefined {
    return this.#cached.get(id);
  }

  /** The products among `ids` that exist, by id. */
  byIds(ids: readonly string[]): Map<string, ProductRow> {
    return this.#cached.getMany(ids);
  }

  /** Keeps a committed row in the cache (which freezes it: readers share it). */
  #remember(row: ProductRow): ProductRow {
    return this.#cached.set(row);
  }

  /** Up to `limit` products after the given id, oldest first. */
  page(afterId: string | undefined, limit: number): ProductRow[] {
    return afterId === undefined ? this.#firstPage.all(limit) : this.#pageAfter.all(afterId, limit);
  }
}
