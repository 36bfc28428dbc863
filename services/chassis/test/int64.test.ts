// int64 amounts in SQLite: written as bigints, read back exactly by
// prepareExactRows, and never handed out rounded by drizzle.
import Database from "better-sqlite3";
import { drizzle } from "drizzle-orm/better-sqlite3";
import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { int64, int64Max, int64Min, prepareExactRows } from "../src/index.js";

const amounts = sqliteTable("amounts", {
  id: text("id").primaryKey(),
  minor: int64("minor").notNull(),
  createdAt: integer("created_at").notNull(),
});

let sqlite: Database.Database;
beforeEach(() => {
  sqlite = new Database(":memory:");
  sqlite.exec("CREATE TABLE amounts (id text PRIMARY KEY, minor integer NOT NULL, created_at integer NOT NULL)");
});
afterEach(() => sqlite.close());

describe("int64 columns", () => {
  it("round-trip the whole int64 range exactly, other integers staying numbers", () => {
    const db = drizzle(sqlite);
    const values = [int64Max, int64Min, 2n ** 53n + 1n, 99_899_999_999_900_100n, 0n];
    db.insert(amounts)
      .values(values.map((minor, i) => ({ id: `a${i}`, minor, createdAt: 1_700_000_000_000 + i })))
      .run();
    const read = prepareExactRows<[], { id: string; minor: bigint; createdAt: number }>(
      sqlite,
      "SELECT id, minor, created_at AS createdAt FROM amounts ORDER BY id",
      ["minor"],
    );
    expect(read.all()).toEqual(values.map((minor, i) => ({ id: `a${i}`, minor, createdAt: 1_700_000_000_000 + i })));
    expect(sqlite.prepare("SELECT typeof(minor) AS type FROM amounts WHERE id = 'a0'").get()).toEqual({
      type: "integer",
    });
  });

  it("refuse a drizzle read that would be rounded, and allow one that would not", () => {
    const db = drizzle(sqlite);
    db.insert(amounts)
      .values({ id: "small", minor: 2n ** 53n - 1n, createdAt: 1 })
      .run();
    expect(db.select().from(amounts).all()).toEqual([{ id: "small", minor: 2n ** 53n - 1n, createdAt: 1 }]);
    db.insert(amounts)
      .values({ id: "large", minor: 2n ** 53n + 1n, createdAt: 2 })
      .run();
    expect(() => db.select().from(amounts).all()).toThrow(RangeError);
  });
});
