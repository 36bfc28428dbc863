import { asc, eq, gt, inArray } from "drizzle-orm";
import type { BetterSQLite3Database } from "drizzle-orm/better-sqlite3";
import type Database from "better-sqlite3";
import { EventLog, newId, type EventStreamOptions } from "@shopmesh/chassis";
import { ProductEventSchema } from "@shopmesh/sdk/products/v1";
import * as schema from "./db/schema.js";
import { products, type ProductRow } from "./db/schema.js";
import { toProduct } from "./product-messages.js";

export type ProductsDb = BetterSQLite3Database<typeof schema>;

/** What UpdateProduct may change; unset fields keep their value. */
export type ProductChange = Partial<Pick<ProductRow, "name" | "description" | "priceMinor" | "currency">>;

/**
 * The products service's data access; the only code that touches
 * products.sqlite. Every change appends its event (ProductCreated,
 * ProductChanged) to the outbox in the same transaction.
 */
export class ProductStore {
  readonly events: EventLog<typeof ProductEventSchema>;
  // Prepared once on the better-sqlite3 handle: drizzle's prepared query
  // still maps every row through its column list, which showed in
  // GetProduct's profile; the aliases give the row its schema shape directly.
  readonly #byId;

  constructor(
    private readonly db: ProductsDb,
    streamOptions: EventStreamOptions = {},
  ) {
    const { $client: sqlite } = db as ProductsDb & { $client: Database.Database };
    this.events = new EventLog(sqlite, ProductEventSchema, streamOptions);
    this.#byId = sqlite.prepare<[id: string], ProductRow>(
      `SELECT id, name, description, price_minor AS priceMinor, currency, created_at AS createdAt FROM products WHERE id = ?`,
    );
  }

  create(product: Omit<ProductRow, "id" | "createdAt">): ProductRow {
    return this.db.transaction((tx) => {
      const row = tx
        .insert(products)
        .values({ id: newId(), createdAt: Date.now(), ...product })
        .returning()
        .get();
      this.events.append({ kind: { case: "productCreated", value: { product: toProduct(row) } } }, row.createdAt);
      return row;
    });
  }

  /**
   * Applies a change; returns the product as it now is, or undefined when
   * there is no such product. A change that changes nothing records no event.
   */
  update(id: string, change: ProductChange): ProductRow | undefined {
    return this.db.transaction((tx) => {
      const before = tx.select().from(products).where(eq(products.id, id)).get();
      if (!before) return undefined;
      const after = { ...before, ...change };
      if (Object.keys(change).every((key) => before[key as keyof ProductChange] === after[key as keyof ProductChange])) return before;
      const row = tx.update(products).set(change).where(eq(products.id, id)).returning().get();
      this.events.append({ kind: { case: "productChanged", value: { product: toProduct(row) } } });
      return row;
    });
  }

  /**
   * Records a ProductCreated event for every product when the outbox is
   * empty but the catalog is not: a database from before the outbox existed
   * then still gives readers the whole catalog. Returns how many it wrote.
   */
  backfillEvents(): number {
    return this.events.backfill(() =>
      this.db
        .select()
        .from(products)
        .orderBy(asc(products.id))
        .all()
        .map((row) => ({ event: { kind: { case: "productCreated", value: { product: toProduct(row) } } }, occurredAt: row.createdAt })),
    );
  }

  byId(id: string): ProductRow | undefined {
    return this.#byId.get(id);
  }

  byIds(ids: readonly string[]): ProductRow[] {
    if (ids.length === 0) return [];
    return this.db.select().from(products).where(inArray(products.id, [...ids])).all();
  }

  /** Up to `limit` products after the given id, oldest first. */
  page(afterId: string | undefined, limit: number): ProductRow[] {
    return this.db
      .select()
      .from(products)
      .where(afterId === undefined ? undefined : gt(products.id, afterId))
      .orderBy(asc(products.id))
      .limit(limit)
      .all();
  }
}
