// ProductStore on a real SQLite file: reads by id go through its row cache,
// and a write is seen by the next read whether or not the row was cached.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { int64Max, openDatabase, type OpenDatabase } from "@shopmesh/chassis";
import * as schema from "../src/db/schema.js";
import { ProductStore } from "../src/product-store.js";

let dir: string;
let database: OpenDatabase<typeof schema>;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "shopmesh-products-"));
  database = openDatabase({
    path: join(dir, "products.sqlite"),
    migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
    schema,
  });
});

afterEach(() => {
  database.close();
  rmSync(dir, { recursive: true, force: true });
});

const product = (name: string) => ({ name, description: `${name}, described.`, priceMinor: 100n, currency: "EUR" });
const stored = (id: string) =>
  database.sqlite
    .prepare("SELECT name, price_minor AS priceMinor FROM products WHERE id = ?")
    .safeIntegers(true)
    .get(id);

describe.each([
  ["a cache smaller than the catalog", 2],
  ["no cache", 0],
  ["the default cache", undefined],
])("ProductStore with %s", (_, cacheEntries) => {
  it("reads what the database holds, by id and by ids, before and after every update", () => {
    const store = new ProductStore(database, { cacheEntries });
    const ids = ["A", "B", "C", "D", "E"].map((name) => store.create(product(name)).id);
    const readAll = () => ({
      byId: ids.map((id) => store.byId(id)?.name),
      byIds: new Map([...store.byIds([...ids].reverse())].map(([id, row]) => [id, row.name])),
    });
    expect(readAll().byId).toEqual(["A", "B", "C", "D", "E"]);
    // Change every product in turn, reading all of them between changes, so
    // that each is changed once while cached and once after being evicted.
    for (const [index, id] of ids.entries()) {
      readAll();
      store.update(id, { name: `renamed ${index}`, priceMinor: 200n + BigInt(index) });
      const after = readAll();
      expect(after.byId[index]).toBe(`renamed ${index}`);
      expect(after.byIds.get(id)).toBe(`renamed ${index}`);
      expect(store.byId(id)).toMatchObject(stored(id) as object);
    }
    expect([...store.byIds([...ids, ids[0]!, "missing"]).keys()].sort()).toEqual([...ids].sort());
    expect(store.byId("missing")).toBeUndefined();
  });

  it("keeps prices up to the int64 maximum exactly, on every read path and in the events", () => {
    const store = new ProductStore(database, { cacheEntries });
    const { id } = store.create({ ...product("Dear"), priceMinor: int64Max });
    const other = store.create({ ...product("Dearer"), priceMinor: 2n ** 53n + 1n }).id;
    const fresh = new ProductStore(database, { cacheEntries });
    expect([fresh.byId(id)?.priceMinor, fresh.byIds([other]).get(other)?.priceMinor]).toEqual([
      int64Max,
      2n ** 53n + 1n,
    ]);
    expect(fresh.page(undefined, 10).map((row) => row.priceMinor)).toEqual([int64Max, 2n ** 53n + 1n]);
    expect(store.update(id, { priceMinor: int64Max - 1n })?.priceMinor).toBe(int64Max - 1n);
    expect(new ProductStore(database, { cacheEntries }).byId(id)?.priceMinor).toBe(int64Max - 1n);
    const prices = database.sqlite
      .prepare<[], { sequence: number; occurredAt: number; payload: Buffer }>(
        "SELECT sequence, occurred_at AS occurredAt, payload FROM outbox ORDER BY sequence",
      )
      .all()
      .map((entry) => store.events.decode(entry).kind.value?.product?.price?.minorUnits);
    expect(prices).toEqual([int64Max, 2n ** 53n + 1n, int64Max - 1n]);
  });

  it("hands out rows that cannot be changed by whoever reads them", () => {
    const store = new ProductStore(database, { cacheEntries });
    const { id } = store.create(product("Frozen"));
    const row = store.byId(id)!;
    expect(() => Object.assign(row, { name: "changed" })).toThrow(TypeError);
    expect(store.byId(id)?.name).toBe("Frozen");
  });
});
