import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@connectrpc/connect";
import { createTransport } from "@shopmesh/sdk";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { portIsFree } from "@shopmesh/cli";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), "shopmesh-start-"));

async function freePortBase(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    const free = await Promise.all([0, 1, 2, 3].map((i) => portIsFree(base + i)));
    if (free.every(Boolean)) return base;
  }
  throw new Error("no four free ports in a row");
}

interface Launcher {
  child: ChildProcess;
  lines: string[];
  /** Resolves with the first printed line matching, waiting for it if need be. */
  waitFor(pattern: RegExp): Promise<string>;
  exited: Promise<number | null>;
}

function launch(base: number): Launcher {
  const child = spawn(process.execPath, ["--import", "tsx", join(root, "scripts", "start-mesh.ts")], {
    cwd: root,
    env: { ...process.env, DATA_DIR: dataDir, SHOPMESH_PORT_BASE: String(base) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    lines.push(line);
    for (const waiter of waiters.filter((w) => w.pattern.test(line))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(line);
    }
  });
  const exited = once(child, "exit").then(([code]) => code as number | null);
  return {
    child,
    lines,
    exited,
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        const seen = lines.find((line) => pattern.test(line));
        if (seen) return resolve(seen);
        waiters.push({ pattern, resolve });
        void exited.then((code) => reject(new Error(`launcher exited (${code}) before printing ${pattern}:\n${lines.join("\n")}`)));
      }),
  };
}

let base: number;
let launcher: Launcher | undefined;
beforeAll(async () => {
  base = await freePortBase();
});
afterAll(async () => {
  if (launcher && launcher.child.exitCode === null) {
    launcher.child.kill("SIGINT");
    await launcher.exited;
  }
  rmSync(dataDir, { recursive: true, force: true });
});

const countProducts = async () => {
  const transport = createTransport({ target: `127.0.0.1:${base + 1}` });
  try {
    return (await createClient(ProductsService, transport).listProducts({ pageSize: 100 })).products.length;
  } finally {
    transport.close();
  }
};

describe("npm start", () => {
  it("starts every service, seeds once, and prints commands that work as printed", async () => {
    launcher = launch(base);
    await launcher.waitFor(/Press Ctrl-C/);
    expect(launcher.lines.filter((line) => /^✓ \S+\s+ready on/.test(line)).length).toBeGreaterThanOrEqual(3);
    expect(launcher.lines).toContain("seeded the demo catalog, users and orders");

    // Run the printed buf curl commands, in order, in one shell, as a person would.
    const commands = launcher.lines.map((line) => line.trim()).filter((line) => line.includes("npx buf curl"));
    expect(commands.length).toBeGreaterThanOrEqual(4);
    const script = ["set -e", ...commands.flatMap((command) => [command, 'echo "--- ok"'])].join("\n");
    const run = spawnSync("bash", ["-c", script], { cwd: root, encoding: "utf8", timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.split("--- ok").length - 1).toBe(commands.length);
    expect(run.stdout).toContain("shopmesh.products.v1.ProductsService");
    expect(run.stdout).toContain('"orders"');
    expect(run.stdout).toContain('"email": "alice@shopmesh.local"');
    // The EVENTUAL view, from user-orders' projection, says how far behind each stream it is.
    expect(launcher.lines).toContain("user-orders' projection has caught up with the event streams");
    expect(run.stdout).toContain('"consistency": "CONSISTENCY_EVENTUAL"');
    expect(run.stdout).toContain('"streamLags"');
    expect(await countProducts()).toBe(12);
  });

  it("keeps the other services serving when one process dies", async () => {
    const users = await launcher!.waitFor(/^✓ users/);
    const pid = Number(/pid (\d+)/.exec(users)![1]);
    process.kill(pid, "SIGKILL");
    await launcher!.waitFor(/users exited/);
    expect(await countProducts()).toBe(12);
  });

  it("stops every service on Ctrl-C, and does not seed twice on the next start", async () => {
    launcher!.child.kill("SIGINT");
    expect(await launcher!.exited).toBe(0);
    expect(await portIsFree(base + 1)).toBe(true);

    launcher = launch(base);
    await launcher.waitFor(/Press Ctrl-C/);
    expect(launcher.lines.some((line) => line.startsWith("demo data already seeded"))).toBe(true);
    expect(await countProducts()).toBe(12);
  });

  it("refuses to start, naming the port, when a port is busy", async () => {
    const second = launch(base);
    expect(await second.exited).toBe(1);
    expect(second.lines.join("\n")).toMatch(new RegExp(`port ${base}\\b.*busy`));
  });
});
