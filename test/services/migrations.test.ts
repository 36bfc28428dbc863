import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { openDatabase } from "@shopmesh/chassis";
import * as ordersSchema from "../../services/orders/src/db/schema.js";
import * as productsSchema from "../../services/products/src/db/schema.js";
import * as userOrdersSchema from "../../services/user-orders/src/db/schema.js";
import * as usersSchema from "../../services/users/src/db/schema.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const schemas = { users: usersSchema, products: productsSchema, orders: ordersSchema, "user-orders": userOrdersSchema };
const scratch = mkdtempSync(join(tmpdir(), "shopmesh-migrations-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe.each(Object.entries(schemas))("%s migrations", (service, schema) => {
  const serviceDir = join(root, "services", service);
  const migrationsFolder = join(serviceDir, "drizzle");

  it("match the drizzle schema: drizzle-kit generates nothing new", () => {
    const out = join(scratch, `${service}-drizzle`);
    cpSync(migrationsFolder, out, { recursive: true });
    const before = readdirSync(out).sort();
    const run = spawnSync(
      join(root, "node_modules", ".bin", "drizzle-kit"),
      // drizzle-kit takes paths relative to its working directory.
      [
        "generate",
        "--dialect",
        "sqlite",
        "--schema",
        relative(scratch, join(serviceDir, "src", "db", "schema.ts")),
        "--out",
        relative(scratch, out),
      ],
      { cwd: scratch, encoding: "utf8" },
    );
    const printed = `${run.stdout}${run.stderr}`;
    expect(run.status, printed).toBe(0);
    const after = readdirSync(out).sort();
    expect(
      after,
      `services/${service}/drizzle is stale: run drizzle-kit generate in services/${service}\n${printed}`,
    ).toEqual(before);
    expect(printed).toMatch(/No schema changes/);
  });

  it("start on a fresh database and again on an already migrated one", () => {
    const path = join(scratch, `${service}.sqlite`);
    const tables = () => {
      const opened = openDatabase({ path, migrationsFolder, schema });
      try {
        return opened.sqlite
          .prepare(
            "select name from sqlite_master where type = 'table' and name not like '\\_\\_%' escape '\\' order by name",
          )
          .all()
          .map((row) => (row as { name: string }).name);
      } finally {
        opened.close();
      }
    };
    const fresh = tables();
    expect(fresh.length).toBeGreaterThan(0);
    expect(tables()).toEqual(fresh);
    // The journal records each migration once, however often the service starts.
    const journal = openDatabase({ path, migrationsFolder, schema });
    try {
      const applied = journal.sqlite.prepare("select count(*) as n from __drizzle_migrations").get() as { n: number };
      const files = readdirSync(migrationsFolder).filter((name) => name.endsWith(".sql"));
      expect(applied.n).toBe(files.length);
    } finally {
      journal.close();
    }
  });
});
