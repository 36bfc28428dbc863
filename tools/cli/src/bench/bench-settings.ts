import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { numberOption, parseCommandLine } from "../command-line.js";
import { connectNodeProcesses, productsVariants } from "./bench-mesh.js";

/** What one `shopmesh bench` run does. */
export interface BenchSettings {
  /** Calls kept in flight, one level after the other. */
  concurrency: number[];
  /** HTTP/2 connections each target's calls are spread over. */
  connections: number;
  /** Measured time per target per concurrency level, in ms (split into interleaved slices). */
  durationMs: number;
  /** Unmeasured calls per target before each level's measurement, in ms. */
  warmupMs: number;
  /** Longest interleaved slice, in ms. */
  sliceMs: number;
  /** First of fourteen consecutive ports (see benchPorts). */
  portBase: number;
  /** Where bench.json and bench.md go. */
  outDir: string;
  /** How many products and orders to seed. */
  products: number;
  orders: number;
  quick: boolean;
  /** Only these targets (keys); the bare baseline always runs. Empty: all. */
  targets: string[];
  /** Processes to run under `node --cpu-prof`, and where their profiles go. */
  cpuProf: string[];
  cpuProfDir: string;
  /**
   * Measure the baselines and the main reads again at the highest level with
   * every server on this Node.js executable, loading better-sqlite3's addon
   * from `sqliteBinding` (one built for that Node.js) when given.
   */
  otherNode?: { path: string; sqliteBinding?: string };
}

export const benchUsage = `usage: shopmesh bench [options]

  --concurrency 1,16,64   calls in flight, one level after the other
  --connections 4         HTTP/2 connections per target, used in turn
  --duration 10           measured seconds per target and level (interleaved slices)
  --warmup 2              warm-up seconds per target and level
  --port-base 30151       fourteen ports from here: users, products, orders, user-orders, bare
                          baseline, the bare baseline over TLS, the products variants (control,
                          plaintext, lean, traced), and the four services on connect-node
  --out reports           where bench.json and bench.md are written (default: reports/, or
                          data/bench-quick/ with --quick, never the committed report)
  --products 100          products to seed
  --orders 20             orders to seed for the benchmark customer
  --quick                 one level (16), 1 s per step: a smoke test, not a measurement
  --targets products.GetProduct,...   load only these (the bare baseline always runs)
  --cpu-prof products,...             run these processes under node --cpu-prof
  --cpu-prof-dir profiles             where the .cpuprofile files go
  --other-node /path/to/node          then measure the baselines and the main reads again at the
                                      highest level with every server on this Node.js
  --other-node-sqlite FILE            better_sqlite3.node built for that Node.js
                                      (scripts/node24-sqlite.sh builds one for Node.js 24)`;

const root = fileURLToPath(new URL("../../../..", import.meta.url));

/**
 * First of the bench's fourteen ports: below Linux's ephemeral range
 * (32768-60999), where an outgoing connection could hold one, and away from
 * npm start's and the experiment's.
 */
export const defaultBenchPortBase = 30151;

/** What `--targets` may name: everything the bench loads but the two bare rows, which always run. */
export const knownTargets: readonly string[] = [
  "users.GetUser",
  "products.GetProduct",
  "orders.ListOrders",
  "user-orders.GetUserOrders",
  "user-orders.GetUserOrders.eventual",
  "products.GetProduct.control",
  "products.GetProduct.plaintext",
  "products.GetProduct.lean",
  "products.GetProduct.traced",
  "users.GetUser.connect-node",
  "products.GetProduct.connect-node",
  "orders.ListOrders.connect-node",
  "user-orders.GetUserOrders.connect-node",
];

/** Reads the command line; throws an Error with a readable message when it is wrong. */
export function readBenchSettings(args: string[]): BenchSettings {
  const { values } = parseCommandLine({
    args,
    options: {
      concurrency: { type: "string" },
      connections: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      "port-base": { type: "string" },
      out: { type: "string" },
      products: { type: "string" },
      orders: { type: "string" },
      quick: { type: "boolean", default: false },
      targets: { type: "string" },
      "cpu-prof": { type: "string" },
      "cpu-prof-dir": { type: "string" },
      "other-node": { type: "string" },
      "other-node-sqlite": { type: "string" },
      help: { type: "boolean", default: false },
    },
    allowPositionals: false,
  });
  if (values.help) throw new UsageRequested();
  const quick = values.quick === true;
  const number = (
    flag: string,
    text: string | undefined,
    fallback: number,
    min: number,
    max = Number.MAX_SAFE_INTEGER,
    whole = false,
  ) => (text === undefined ? fallback : numberOption(flag, text, min, max, whole));
  const concurrency = (values.concurrency ?? (quick ? "16" : "1,16,64"))
    .split(",")
    .map((part) => number("concurrency", part.trim(), 1, 1, 4096, true));
  const durationMs = number("duration", values.duration, quick ? 1 : 10, 0.1) * 1000;
  const targets = list(values.targets);
  for (const target of targets)
    if (!knownTargets.includes(target))
      throw new Error(`--targets: expected some of ${knownTargets.join(", ")}, got ${target}`);
  const cpuProf = list(values["cpu-prof"]);
  const processes = [
    "users",
    "products",
    "orders",
    "user-orders",
    "bare-baseline",
    ...productsVariants,
    ...Object.keys(connectNodeProcesses),
  ];
  for (const name of cpuProf)
    if (!processes.includes(name)) throw new Error(`--cpu-prof: expected some of ${processes.join(", ")}, got ${name}`);
  const otherNode = values["other-node"];
  const otherSqlite = values["other-node-sqlite"];
  if (otherSqlite !== undefined && otherNode === undefined)
    throw new Error("--other-node-sqlite: only with --other-node");
  for (const [flag, file] of [
    ["other-node", otherNode],
    ["other-node-sqlite", otherSqlite],
  ] as const)
    if (file !== undefined && !existsSync(file)) throw new Error(`--${flag}: no file ${file}`);
  return {
    concurrency,
    connections: number("connections", values.connections, 4, 1, 64, true),
    durationMs,
    warmupMs: number("warmup", values.warmup, quick ? 0.3 : 2, 0) * 1000,
    sliceMs: Math.min(durationMs, 2000),
    portBase: number("port-base", values["port-base"], defaultBenchPortBase, 1024, 65521, true),
    // A quick run is a smoke test: its figures must not replace the measured report that is committed.
    outDir: resolve(values.out ?? (quick ? join(root, "data", "bench-quick") : join(root, "reports"))),
    products: number("products", values.products, quick ? 20 : 100, 1, 10_000, true),
    orders: number("orders", values.orders, quick ? 5 : 20, 1, 1000, true),
    quick,
    targets,
    cpuProf,
    cpuProfDir: resolve(values["cpu-prof-dir"] ?? "profiles"),
    ...(otherNode === undefined
      ? {}
      : {
          otherNode: {
            path: resolve(otherNode),
            ...(otherSqlite === undefined ? {} : { sqliteBinding: resolve(otherSqlite) }),
          },
        }),
  };
}

const list = (text: string | undefined) =>
  (text ?? "")
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean);

/** Thrown for `--help`. */
export class UsageRequested extends Error {}
