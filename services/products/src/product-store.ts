import { asc, eq, gt, inArray, sql } from "drizzle-orm";
import type { BetterSQLite3Database } from "drizzle-orm/better-sqlite3";
import { newId } from "@shopmesh/chassis";
import * as schema from "./db/schema.js";
import { products, type ProductRow } from "./db/schema.js";

export type ProductsDb = BetterSQLite3Database<typeof schema>;

/** The products service's data access; the only code that touches products.sqlite. */
export class ProductStore {
  // Built and prepared once: drizzle would otherwise rebuild the SQL, and
  // SQLite re-prepare it, on every GetProduct.
  readonly #byId;

  constructor(private readonly db: ProductsDb) {
    this.#byId = db.select().from(products).where(eq(products.id, sql.placeholder("id"))).prepare();
  }

  create(product: Omit<ProductRow, "id" | "createdAt">): ProductRow {
    return this.db
      .insert(products)
      .values({ id: newId(), createdAt: Date.now(), ...product })
      .returning()
      .get();
  }

  byId(id: string): ProductRow | undefined {
    return this.#byId.get({ id });
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
