// What ListOrders' own work on one page costs, in this process, without the
// transport: reading the page (its ids and orders from the caches, or from
// both statements), building its Order messages, and encoding the response. Each
// step runs in a hot loop on a real SQLite file holding one customer's orders,
// in several rounds, and the median CPU µs per page is printed. Set beside
// the bench's server CPU per ListOrders call, it tells how much of that call
// is the page's data and how much is everything around it
// (docs/performance-notes.md). The orders are shaped as the bench seeds them:
// 2 and 3 lines in turn, of products with generated ids.
//
//   npm run bench:orders-page -- [--orders 20] [--iterations 20000] [--rounds 5]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { newId, openDatabase } from "@shopmesh/chassis";
import { ListOrdersResponseSchema, OrderSchema } from "@shopmesh/sdk/orders/v1";
import * as schema from "../src/db/schema.js";
import { orderMessage, toOrder } from "../src/order-messages.js";
import { OrderStore } from "../src/order-store.js";

const { values } = parseArgs({
  options: {
    orders: { type: "string", default: "20" },
    iterations: { type: "string", default: "20000" },
    rounds: { type: "string", default: "5" },
  },
  allowPositionals: false,
});
const wholeNumber = (flag: string, text: string, min: number, max: number): number => {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`--${flag} must be a whole number from ${min} to ${max}, not ${JSON.stringify(text)}`);
  }
  return value;
};
const pageSize = wholeNumber("orders", values.orders, 1, 100);
const iterations = wholeNumber("iterations", values.iterations, 1, 10_000_000);
const rounds = wholeNumber("rounds", values.rounds, 1, 100);

const dir = mkdtempSync(join(tmpdir(), "shopmesh-orders-page-bench-"));
const database = openDatabase({
  path: join(dir, "orders.sqlite"),
  migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
  schema,
});
try {
  const cached = new OrderStore(database);
  const uncached = new OrderStore(database, { cacheEntries: 0 });
  const userId = newId();
  const productIds = Array.from({ length: 100 }, () => newId());
  // The page's orders, and as many of another customer's, so that the index is not the whole table.
  for (const owner of [userId, newId()]) {
    for (let n = 0; n < pageSize; n++) {
      const lines = Array.from({ length: 2 + (n % 2) }, (_, line) => ({
        productId: productIds[(n * 3 + line * 7) % productIds.length]!,
        quantity: 1 + ((n + line) % 3),
        unitPriceMinor: BigInt(500 + ((n * 737) % 9500)),
      }));
      cached.place({
        userId: owner,
        requestId: `request-${n}`,
        requestFingerprint: "bench",
        currency: "EUR",
        totalMinor: lines.reduce((sum, line) => sum + line.unitPriceMinor * BigInt(line.quantity), 0n),
        lines,
      });
    }
  }
  const page = cached.pageForUser(userId, undefined, pageSize);
  if (page.length !== pageSize) throw new Error(`read ${page.length} orders, placed ${pageSize}`);
  const messages = page.map(orderMessage);
  const response = create(ListOrdersResponseSchema, { orders: messages, nextPageToken: "" });

  const steps: [name: string, step: () => unknown][] = [
    ["read the page, its ids and orders cached", () => cached.pageForUser(userId, undefined, pageSize)],
    ["read the page, no cache (both statements)", () => uncached.pageForUser(userId, undefined, pageSize)],
    ["build its Order messages", () => page.map((order) => create(OrderSchema, toOrder(order)))],
    ["take its kept Order messages", () => page.map(orderMessage)],
    ["encode the response", () => toBinary(ListOrdersResponseSchema, response)],
  ];
  const cpuMicrosPerPage = (step: () => unknown): number => {
    const start = process.cpuUsage();
    for (let i = 0; i < iterations; i++) step();
    const used = process.cpuUsage(start);
    return (used.user + used.system) / iterations;
  };
  const results = new Map(steps.map(([name]) => [name, [] as number[]]));
  for (const [, step] of steps) cpuMicrosPerPage(step); // warm-up: compiled before it is measured
  for (let round = 0; round < rounds; round++) {
    for (const [name, step] of steps) results.get(name)!.push(cpuMicrosPerPage(step));
  }
  const median = (numbers: number[]) => numbers.toSorted((a, b) => a - b)[Math.floor(numbers.length / 2)]!;
  const bytes = toBinary(ListOrdersResponseSchema, response).length;
  console.log(
    `One page of ${pageSize} orders of 2-3 lines (${bytes} bytes encoded), median of ${rounds} rounds of ${iterations}:`,
  );
  console.log("| step | CPU µs per page |\n| --- | ---: |");
  for (const [name] of steps) console.log(`| ${name} | ${median(results.get(name)!).toFixed(1)} |`);
} finally {
  database.close();
  rmSync(dir, { recursive: true, force: true });
}
