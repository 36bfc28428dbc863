// What a watching console costs the services: `npm start` (with its console)
// on free ports, then a closed loop of products.GetProduct (16 in flight over
// 4 connections) in windows that alternate between nobody watching and a page
// open in headless Chromium (its load off). Prints calls/s and products' CPU
// per call for each kind of window, the CPU of the npm start process that
// serves the console, and Chromium's. Run with:
//   node --import tsx tools/console/bench/watch-cost.ts [--rounds 3] [--seconds 5]
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { setTimeout } from "node:timers/promises";
import { parseArgs } from "node:util";
import { defaultMetricsPort } from "@shopmesh/chassis";
import { createClient, createTransport } from "@shopmesh/sdk";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { chromium } from "playwright-core";
import { freePortBase } from "../../../test/support/free-port.js";

const { values } = parseArgs({
  options: { rounds: { type: "string", default: "3" }, seconds: { type: "string", default: "5" } },
});
const rounds = Number(values.rounds);
const windowMs = Number(values.seconds) * 1000;
const inFlight = 16;
const settleMs = 3000;
const root = fileURLToPath(new URL("../../..", import.meta.url));

/** CPU seconds a process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Every process's parent, session and CPU seconds so far, from /proc. */
function processTable(): Map<number, { ppid: number; session: number; cpu: number }> {
  const table = new Map<number, { ppid: number; session: number; cpu: number }>();
  for (const pid of readdirSync("/proc").filter((entry) => /^\d+$/.test(entry))) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      table.set(Number(pid), {
        ppid: Number(fields[1]),
        session: Number(fields[3]),
        cpu: (Number(fields[11]) + Number(fields[12])) / 100,
      });
    } catch {
      // gone meanwhile
    }
  }
  return table;
}

/**
 * Chromium's CPU seconds between two process tables: its browser is this
 * process's child and leads a session of its own, and every process it
 * starts (zygotes, renderers, GPU, utilities) stays in that session. A
 * process counts from its CPU in the first table (or 0 if it started since);
 * one that exited meanwhile is not counted.
 */
function browserCpuSeconds(before: ReturnType<typeof processTable>, after: ReturnType<typeof processTable>): number {
  const sessions = new Set(
    [...after].filter(([pid, entry]) => entry.ppid === process.pid && entry.session === pid).map(([pid]) => pid),
  );
  let seconds = 0;
  for (const [pid, entry] of after) if (sessions.has(entry.session)) seconds += entry.cpu - (before.get(pid)?.cpu ?? 0);
  return seconds;
}

/** products' own CPU seconds, as its metrics say. */
async function productsCpu(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const line = text.split("\n").find((candidate) => candidate.startsWith("process_cpu_seconds_total "));
  return Number(line?.split(" ")[1]);
}

const dataDir = mkdtempSync(join(tmpdir(), "shopmesh-watch-cost-"));
const base = await freePortBase();
const launcher = spawn(process.execPath, ["--import", "tsx", join(root, "scripts", "start-mesh.ts")], {
  cwd: root,
  env: { ...process.env, DATA_DIR: dataDir, SHOPMESH_PORT_BASE: String(base), CONSOLE_PORT: "0" },
  stdio: ["ignore", "pipe", "inherit"],
});
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking", "--no-first-run"],
});
try {
  const lines = createInterface({ input: launcher.stdout! });
  const printed: string[] = [];
  const consoleUrl = await new Promise<string>((resolve, reject) => {
    lines.on("line", (line) => {
      printed.push(line);
      const url = /^Console: (http:\/\/127\.0\.0\.1:\d+) /.exec(line)?.[1];
      if (url) resolve(url);
    });
    void once(launcher, "exit").then(() => reject(new Error(printed.join("\n"))));
  });
  // npm start prints the console's address once the demo data is there.
  const products = `127.0.0.1:${base + 1}`;
  const metricsPort = defaultMetricsPort(base + 1);
  const ca = readFileSync(join(dataDir, "tls", "ca.pem"));
  const clients = Array.from({ length: 4 }, () =>
    createClient(ProductsService, createTransport({ target: products, tls: { ca, service: "products" } })),
  );
  const { products: list } = await clients[0]!.listProducts({});
  const ids = list.map((product) => product.id);

  const load = async (ms: number) => {
    let calls = 0;
    let next = 0;
    const until = performance.now() + ms;
    await Promise.all(
      Array.from({ length: inFlight }, async (_, worker) => {
        while (performance.now() < until) {
          await clients[(worker + next) % clients.length]!.getProduct({ productId: ids[next++ % ids.length]! });
          calls++;
        }
      }),
    );
    return calls;
  };
  const measure = async () => {
    const [productsBefore, consoleBefore, browserBefore, started] = [
      await productsCpu(metricsPort),
      cpuSeconds(launcher.pid!),
      processTable(),
      performance.now(),
    ];
    const calls = await load(windowMs);
    const seconds = (performance.now() - started) / 1000;
    return {
      callsPerSecond: calls / seconds,
      productsMicrosPerCall: (((await productsCpu(metricsPort)) - productsBefore) * 1e6) / calls,
      consoleMillisPerSecond: ((cpuSeconds(launcher.pid!) - consoleBefore) * 1000) / seconds,
      browserMillisPerSecond: (browserCpuSeconds(browserBefore, processTable()) * 1000) / seconds,
    };
  };

  await load(2000);
  const results: Record<"unwatched" | "watched", Awaited<ReturnType<typeof measure>>[]> = {
    unwatched: [],
    watched: [],
  };
  for (let round = 0; round < rounds; round++) {
    results.unwatched.push(await measure());
    const page = await browser.newPage();
    await page.goto(consoleUrl);
    await page.getByText("live").first().waitFor();
    // Loading the page (compiling its script, drawing the first summary and trace) is a one-off
    // that would swamp a short window; it is kept out of what watching costs.
    await setTimeout(settleMs);
    results.watched.push(await measure());
    await page.close();
  }
  const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  console.log(
    `products.GetProduct, ${inFlight} in flight, ${rounds} × ${windowMs / 1000} s windows each, medians (node ${process.version}):`,
  );
  console.log("| console | calls/s | products CPU µs/call | npm start (console) CPU ms/s | Chromium CPU ms/s |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const [kind, rows] of Object.entries(results)) {
    const of = (key: keyof (typeof rows)[number]) => median(rows.map((row) => row[key]));
    console.log(
      `| ${kind} | ${Math.round(of("callsPerSecond"))} | ${Math.round(of("productsMicrosPerCall"))} | ${of("consoleMillisPerSecond").toFixed(1)} | ${of("browserMillisPerSecond").toFixed(1)} |`,
    );
  }
} finally {
  await browser.close();
  launcher.kill("SIGTERM");
  await once(launcher, "exit");
  rmSync(dataDir, { recursive: true, force: true });
}
