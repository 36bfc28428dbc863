// UserStore on a real SQLite file: reads by id go through its row cache,
// which holds accounts without their password hashes, and an account the
// store writes is seen by the next read whether or not it was cached.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openDatabase, type OpenDatabase } from "@shopmesh/chassis";
import * as schema from "../src/db/schema.js";
import { UserStore } from "../src/user-store.js";

let dir: string;
let database: OpenDatabase<typeof schema>;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "shopmesh-users-"));
  database = openDatabase({
    path: join(dir, "users.sqlite"),
    migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
    schema,
  });
});

afterEach(() => {
  database.close();
  rmSync(dir, { recursive: true, force: true });
});

const account = (name: string) => ({
  email: `${name}@example.com`,
  displayName: name,
  passwordHash: `scrypt$hash-of-${name}`,
  role: "customer" as const,
});

describe.each([
  ["a cache smaller than the accounts", 2],
  ["no cache", 0],
  ["the default cache", undefined],
])("UserStore with %s", (_, cacheEntries) => {
  it("reads every account by id and by ids, from the store that wrote them and from a fresh one", () => {
    const store = new UserStore(database, { cacheEntries });
    const ids = ["ann", "bob", "cat", "dan", "eve"].map((name) => store.create(account(name))!.id);
    // A second store on the same file starts with nothing cached.
    for (const reader of [store, new UserStore(database, { cacheEntries })]) {
      expect(ids.map((id) => reader.byId(id)?.displayName)).toEqual(["ann", "bob", "cat", "dan", "eve"]);
      const found = reader.byIds([...ids].reverse().concat(ids[0]!, "missing"));
      expect(new Map([...found].map(([id, row]) => [id, row.email]))).toEqual(
        new Map(ids.map((id, index) => [id, `${["ann", "bob", "cat", "dan", "eve"][index]}@example.com`])),
      );
      expect(reader.byId("missing")).toBeUndefined();
    }
  });

  it("never hands out a password hash from a read by id, and keeps it for sign-in's read by email", () => {
    const store = new UserStore(database, { cacheEntries });
    const created = store.create(account("ann"))!;
    expect(created.passwordHash).toBe("scrypt$hash-of-ann");
    const reads = [
      store.byId(created.id),
      new UserStore(database, { cacheEntries }).byId(created.id),
      ...new UserStore(database, { cacheEntries }).byIds([created.id]).values(),
    ];
    for (const row of reads) {
      expect(row).toEqual({
        id: created.id,
        email: "ann@example.com",
        displayName: "ann",
        role: "customer",
        createdAt: created.createdAt,
      });
    }
    expect(store.byEmail("ann@example.com")?.passwordHash).toBe("scrypt$hash-of-ann");
  });

  it("reads an email brought to its normal form at once, though the account was cached before", () => {
    const store = new UserStore(database, { cacheEntries });
    const { id } = store.create(account("Old"))!;
    expect(store.byId(id)?.email).toBe("Old@example.com");
    const { changed } = store.renormaliseEmails((email) => email.toLowerCase());
    expect(changed).toBe(1);
    expect(store.byId(id)?.email).toBe("old@example.com");
    expect(store.byIds([id]).get(id)?.email).toBe("old@example.com");
  });

  it("hands out accounts that cannot be changed by whoever reads them", () => {
    const store = new UserStore(database, { cacheEntries });
    const { id } = store.create(account("ann"))!;
    const row = store.byId(id)!;
    expect(() => Object.assign(row, { role: "admin" })).toThrow(TypeError);
    expect(store.byId(id)?.role).toBe("customer");
  });

  it("refuses a second account with the same email, and keeps nothing for it", () => {
    const store = new UserStore(database, { cacheEntries });
    const first = store.create(account("ann"))!;
    expect(store.create({ ...account("ann"), displayName: "another" })).toBeUndefined();
    expect(store.byEmail("ann@example.com")?.id).toBe(first.id);
    expect(store.byId(first.id)?.displayName).toBe("ann");
  });
});
