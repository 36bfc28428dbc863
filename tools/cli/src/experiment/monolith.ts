import Database from "better-sqlite3";
import type { Dataset } from "./dataset.js";

/** One line of a user's view as the monolith returns it. */
export interface MonolithLine {
  orderId: string;
  createTimeMs: number;
  productId: string;
  quantity: number;
  unitPriceMinor: number;
  productName: string | null;
}

/**
 * The monolith the services replaced: one SQLite database holding users,
 * products, orders and order lines, copied from the same seeded data, that
 * answers "which products did this user order?" with one JOIN in the same
 * process. No network, no remote dependency to be slow or down.
 */
export class MonolithDatabase {
  readonly #db: Database.Database;
  readonly #view: Database.Statement<[string, number, string]>;

  constructor(file: string, dataset: Dataset) {
    this.#db = new Database(file);
    this.#db.pragma("journal_mode = WAL");
    this.#db.exec(`
      CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL);
      CREATE TABLE products (id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL, price_minor INTEGER NOT NULL, currency TEXT NOT NULL);
      CREATE TABLE orders (id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id), create_time_ms INTEGER NOT NULL,
        total_minor INTEGER NOT NULL, currency TEXT NOT NULL);
      CREATE INDEX orders_by_user ON orders (user_id, id);
      CREATE TABLE order_lines (order_id TEXT NOT NULL REFERENCES orders(id), line_no INTEGER NOT NULL, product_id TEXT NOT NULL REFERENCES products(id),
        quantity INTEGER NOT NULL, unit_price_minor INTEGER NOT NULL, PRIMARY KEY (order_id, line_no));
    `);
    const load = this.#db.transaction(() => {
      const user = this.#db.prepare("INSERT INTO users VALUES (?, ?, ?)");
      for (const u of dataset.users) user.run(u.id, u.email, u.displayName);
      const product = this.#db.prepare("INSERT INTO products VALUES (?, ?, ?, ?, ?)");
      for (const p of dataset.products) product.run(p.id, p.name, p.description, p.priceMinor, p.currency);
      const order = this.#db.prepare("INSERT INTO orders VALUES (?, ?, ?, ?, ?)");
      const line = this.#db.prepare("INSERT INTO order_lines VALUES (?, ?, ?, ?, ?)");
      for (const o of dataset.orders) {
        order.run(o.id, o.userId, o.createTimeMs, o.totalMinor, o.currency);
        for (const [i, l] of o.lines.entries()) line.run(o.id, i, l.productId, l.quantity, l.unitPriceMinor);
      }
    });
    load();
    this.#db.exec("ANALYZE");
    // The same page the aggregator shows: the user's newest orders, every line with its product.
    this.#view = this.#db.prepare(`
      SELECT o.id AS orderId, o.create_time_ms AS createTimeMs, l.product_id AS productId, l.quantity AS quantity,
             l.unit_price_minor AS unitPriceMinor, p.name AS productName, u.display_name AS displayName
      FROM users u
      JOIN (SELECT * FROM orders WHERE user_id = ? ORDER BY id DESC LIMIT ?) o ON o.user_id = u.id
      JOIN order_lines l ON l.order_id = o.id
      LEFT JOIN products p ON p.id = l.product_id
      WHERE u.id = ?
      ORDER BY o.id DESC, l.line_no`);
  }

  /** The user's view: newest `pageSize` orders with their lines and product names. */
  view(userId: string, pageSize = 20): MonolithLine[] {
    return this.#view.all(userId, pageSize, userId) as MonolithLine[];
  }

  counts(): Record<"users" | "products" | "orders" | "order_lines", number> {
    const count = (table: string) => (this.#db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    return {
      users: count("users"),
      products: count("products"),
      orders: count("orders"),
      order_lines: count("order_lines"),
    };
  }

  close(): void {
    this.#db.close();
  }
}
