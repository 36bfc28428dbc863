// Comparing user-orders' projection with the databases it copies, for tests.
import { join } from "node:path";
import Database from "better-sqlite3";
import { vi } from "vitest";
import { sourceHeads as sourceHeadsOf } from "@shopmesh/cli";
import type { TestMesh } from "./mesh.js";

/** The newest sequence number of each source's outbox, asked of the source itself. */
export async function sourceHeads(mesh: TestMesh): Promise<{ users: number; products: number; orders: number }> {
  const heads = await sourceHeadsOf(mesh);
  return { users: Number(heads.users), products: Number(heads.products), orders: Number(heads.orders) };
}

/** Stream positions stored in a projection database. */
export function projectionPositions(path: string): { users: number; products: number; orders: number } {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare("SELECT stream, sequence FROM stream_positions").all() as {
      stream: string;
      sequence: number;
    }[];
    const at = (stream: string) => rows.find((row) => row.stream === stream)?.sequence ?? 0;
    return { users: at("users"), products: at("products"), orders: at("orders") };
  } finally {
    db.close();
  }
}

/** Polls `check` (vitest's waitFor, every 25 ms) until it returns true, failing after `timeoutMs` with `what`. */
export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  await vi.waitFor(
    async () => {
      if (!(await check())) throw new Error(`timed out waiting until ${what}`);
    },
    { timeout: timeoutMs, interval: 25 },
  );
}

/** Waits until the projection at `path` has applied everything its sources have committed now. */
export async function waitCaughtUp(mesh: TestMesh, path: string, timeoutMs = 20_000): Promise<void> {
  const heads = await sourceHeads(mesh);
  await waitUntil(
    `the projection reaches ${JSON.stringify(heads)}`,
    () => {
      try {
        const at = projectionPositions(path);
        return at.users >= heads.users && at.products >= heads.products && at.orders >= heads.orders;
      } catch {
        return false; // not created yet
      }
    },
    timeoutMs,
  );
}

/** Everything the projection should hold, read from the sources' own databases and from the projection, in one comparable shape. */
export function projectionAndSources(
  dataDir: string,
  projectionPath: string,
): { projection: Snapshot; sources: Snapshot } {
  const open = (path: string) => new Database(path, { readonly: true, fileMustExist: true });
  const users = open(join(dataDir, "users.sqlite"));
  const products = open(join(dataDir, "products.sqlite"));
  const orders = open(join(dataDir, "orders.sqlite"));
  const projection = open(projectionPath);
  try {
    const read = (source: Record<keyof Snapshot, Database.Database>): Snapshot => ({
      users: source.users.prepare(snapshotQueries.users).all(),
      products: source.products.prepare(snapshotQueries.products).all(),
      orders: source.orders.prepare(snapshotQueries.orders).all(),
      lines: source.lines.prepare(snapshotQueries.lines).all(),
    });
    return {
      sources: read({ users, products, orders, lines: orders }),
      projection: read({ users: projection, products: projection, orders: projection, lines: projection }),
    };
  } finally {
    for (const db of [users, products, orders, projection]) db.close();
  }
}

/** The columns the projection copies, in the same order from either side. */
const snapshotQueries: Record<keyof Snapshot, string> = {
  users: "SELECT id, email, display_name FROM users ORDER BY id",
  products: "SELECT id, name, description, price_minor, currency FROM products ORDER BY id",
  orders: "SELECT id, user_id, currency, total_minor, created_at FROM orders ORDER BY id",
  lines: "SELECT order_id, line_no, product_id, quantity, unit_price_minor FROM order_lines ORDER BY order_id, line_no",
};

export interface Snapshot {
  users: unknown[];
  products: unknown[];
  orders: unknown[];
  lines: unknown[];
}
