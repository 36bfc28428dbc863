// openDatabase loads better-sqlite3's addon from SQLITE_NATIVE_BINDING when
// it is set (one built for another Node.js), and fails on a missing one
// rather than falling back to the installed addon.
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openDatabase } from "@shopmesh/chassis";

const migrationsFolder = fileURLToPath(new URL("../../users/drizzle", import.meta.url));
const installedAddon = join(
  dirname(createRequire(import.meta.url).resolve("better-sqlite3/package.json")),
  "build",
  "Release",
  "better_sqlite3.node",
);

let dir: string;
const before = process.env.SQLITE_NATIVE_BINDING;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "shopmesh-open-database-"));
});

afterEach(() => {
  if (before === undefined) delete process.env.SQLITE_NATIVE_BINDING;
  else process.env.SQLITE_NATIVE_BINDING = before;
  rmSync(dir, { recursive: true, force: true });
});

describe("openDatabase's native addon", () => {
  it("loads the addon SQLITE_NATIVE_BINDING names", () => {
    process.env.SQLITE_NATIVE_BINDING = installedAddon;
    const database = openDatabase({ path: join(dir, "a.sqlite"), migrationsFolder, schema: {} });
    try {
      expect(database.sqlite.prepare("SELECT 1 AS one").get()).toEqual({ one: 1 });
    } finally {
      database.close();
    }
  });

  it("fails, naming the file, when that addon is not there", () => {
    process.env.SQLITE_NATIVE_BINDING = join(dir, "missing.node");
    expect(() => openDatabase({ path: join(dir, "b.sqlite"), migrationsFolder, schema: {} })).toThrow(/missing\.node/);
  });
});

describe("openDatabase's file", () => {
  it("names the file it cannot open, a folder where the database should be", () => {
    expect(() => openDatabase({ path: dir, migrationsFolder, schema: {} })).toThrow(
      `cannot open the database ${dir}: unable to open database file`,
    );
  });
});
