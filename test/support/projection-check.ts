// Comparing user-orders' projection with the databases it copies, for tests.
import { join } from "node:path";
import Database from "better-sqlite3";
import { sourceHeads as sourceHeadsOf } from "@shopmesh/cli";
import type { TestMesh } from "./mesh.js";

/** The newest sequence number of each source's outbox, asked of the source itself. */
export async function sourceHeads(mesh: TestMesh): Promise<{ users: number; products: number; orders: number }> {
  const heads = await sourceHeadsOf((service) => mesh.address(service), mesh.eventsToken);
  return { users: Number(heads.users), products: Number(heads.products), orders: Number(heads.orders) };
}

/** Stream positions stored in a projection database. */
export function projectionPositions(path: string): { users: number; products: number; orders: number } {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare("SELECT stream, sequence FROM stream_positions").all() as { stream: string; sequence: number }[];
    const at = (stream: string) => rows.find((row) => row.stream === stream)?.sequence ?? 0;
    return { users: at("users"), products: at("products"), orders: at("orders") };
  } finally {
    db.close();
  }
}

/** Polls `check` until it returns true, failing after `timeoutMs`. */
export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
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
export function projectionAndSources(dataDir: string, projectionPath: string): { projection: Snapshot; sources: Snapshot } {
  const open = (path: string) => new Database(path, { readonly: true, fileMustExist: true });
  const users = open(join(dataDir, "users.sqlite"));
  const products = open(join(dataDir, "products.sqlite"));
  const orders = open(join(dataDir, "orders.sqlite"));
  const projection = open(projectionPath);
  try {
    const sources: Snapshot = {
      users: users.prepare("SELECT id, email, display_name FROM users ORDER BY id").all(),
      products: products.prepare("SELECT id, name, description, price_minor, currency FROM products ORDER BY id").all(),
      orders: orders.prepare("SELECT id, user_id, currency, total_minor, created_at FROM orders ORDER BY id").all(),
      lines: orders.prepare("SELECT order_id, line_no, product_id, quantity, unit_price_minor FROM order_lines ORDER BY order_id, line_no").all(),
    };
    const projected: Snapshot = {
      users: projection.prepare("SELECT id, email, display_name FROM users ORDER BY id").all(),
      products: projection.prepare("SELECT id, name, description, price_minor, currency FROM products ORDER BY id").all(),
      orders: projection.prepare("SELECT id, user_id, currency, total_minor, created_at FROM orders ORDER BY id").all(),
      lines: projection
        .prepare("SELECT order_id, line_no, product_id, quantity, unit_price_minor FROM order_lines ORDER BY order_id, line_no")
        .all(),
    };
    return { projection: projected, sources };
  } finally {
    for (const db of [users, products, orders, projection]) db.close();
  }
}

export interface Snapshot {
  users: unknown[];
  products: unknown[];
  orders: unknown[];
  lines: unknown[];
}
