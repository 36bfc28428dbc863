// Starts one service a few times compiled (plain node on dist/main.js) and a
// few times from its sources (node --import tsx src/main.ts), and prints how
// long each took to log `ready` and its resident memory then (VmRSS, Linux).
//
//   node scripts/startup-footprint.mjs [service] [runs]     (default: products 5; run npm run build first)
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const root = resolve(fileURLToPath(import.meta.url), "../..");
const service = process.argv[2] ?? "products";
const runs = Math.min(Number(process.argv[3] ?? 5), 20);
const scratch = mkdtempSync(join(tmpdir(), "startup-footprint-"));

function startOnce(args, run) {
  return new Promise((resolvePromise, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, {
      cwd: root,
      env: {
        ...process.env,
        PORT: "0",
        TLS: "off",
        DEVELOPMENT_MODE: "on",
        METRICS_PORT: "off",
        DATA_DIR: join(scratch, `${run}`),
      },
      stdio: ["ignore", "pipe", "ignore"],
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${args.join(" ")} did not become ready in 30 s`));
    }, 30_000);
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (!line.includes('"msg":"ready"')) return;
      const readyMs = performance.now() - started;
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
      clearTimeout(timer);
      child.once("exit", () => resolvePromise({ readyMs, rssMiB: Number(rss?.[1] ?? Number.NaN) / 1024 }));
      child.kill("SIGTERM");
    });
  });
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const variants = [
  ["compiled (node dist/main.js)", [join(root, "services", service, "dist", "main.js")]],
  ["sources (node --import tsx src/main.ts)", ["--import", "tsx", join(root, "services", service, "src", "main.ts")]],
];
try {
  for (const [name, args] of variants) {
    const results = [];
    // One run first so that both variants start with a warm file cache (and tsx with its transform cache).
    await startOnce(args, `${name.length}-warm`);
    for (let run = 0; run < runs; run++) results.push(await startOnce(args, `${name.length}-${run}`));
    console.log(
      `${service} ${name}: ready in ${median(results.map((r) => r.readyMs)).toFixed(0)} ms, ` +
        `RSS ${median(results.map((r) => r.rssMiB)).toFixed(1)} MiB (median of ${runs})`,
    );
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
