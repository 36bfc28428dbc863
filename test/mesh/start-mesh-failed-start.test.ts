// npm start (scripts/start-mesh.ts) as a process: when a service fails at
// start, or Ctrl-C comes before every service is ready, no process of the mesh
// is left behind. The mesh's processes are found by their DATA_DIR.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { processesWithEnv } from "../support/processes-with-env.js";
import { freePortBase } from "../support/free-port.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dataDirs: string[] = [];

afterEach(() => {
  for (const dataDir of dataDirs.splice(0)) {
    for (const pid of processesWithEnv("DATA_DIR", dataDir)) process.kill(pid, "SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  }
});

/** Starts npm start's script on free ports with its own data folder; `until` resolves on the first line matching. */
async function launch(env: Record<string, string> = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "shopmesh-start-failed-"));
  dataDirs.push(dataDir);
  const child = spawn(process.execPath, ["--import", "tsx", join(root, "scripts", "start-mesh.ts")], {
    cwd: root,
    env: {
      ...process.env,
      DATA_DIR: dataDir,
      SHOPMESH_PORT_BASE: String(await freePortBase()),
      METRICS_PORT: "off",
      TLS: "off",
      ...env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: string[] = [];
  const listeners: ((line: string) => void)[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    lines.push(line);
    for (const listener of listeners) listener(line);
  });
  const exited = once(child, "exit").then(([code]) => code as number | null);
  const until = (pattern: RegExp) =>
    new Promise<void>((resolve, reject) => {
      if (lines.some((line) => pattern.test(line))) return resolve();
      listeners.push((line) => {
        if (pattern.test(line)) resolve();
      });
      void exited.then(() => reject(new Error(`npm start exited before printing ${pattern}:\n${lines.join("\n")}`)));
    });
  return { child, dataDir, lines, exited, until };
}

describe("npm start when the mesh does not come up", { timeout: 120_000 }, () => {
  it("stops the services already started when one exits at start on a bad setting, and exits 1", async () => {
    // Only user-orders reads RETRY_ATTEMPTS, and it starts last: users, products and orders are ready by then.
    const launcher = await launch({ RETRY_ATTEMPTS: "bogus" });
    expect(await launcher.exited).toBe(1);
    expect(launcher.lines.filter((line) => /^✓ \S+\s+ready on/.test(line))).toHaveLength(3);
    expect(launcher.lines.join("\n")).toMatch(
      /shopmesh failed to start: .*user-orders.* exited with 2 before it was ready/,
    );
    expect(processesWithEnv("DATA_DIR", launcher.dataDir)).toEqual([]);
  });

  it("stops the services started so far, and the one starting, on Ctrl-C before every service is ready", async () => {
    const launcher = await launch();
    await launcher.until(/^✓ users\s+ready on/);
    // Ctrl-C sent to npm start alone (a terminal would signal the services too): it must stop them itself.
    launcher.child.kill("SIGINT");
    expect(await launcher.exited).toBe(0);
    expect(launcher.lines.join("\n")).toContain("SIGINT: abandoning the start; stopping what it started");
    expect(processesWithEnv("DATA_DIR", launcher.dataDir)).toEqual([]);
  });

  it("stops every service it started when whoever read its output goes away", async () => {
    const launcher = await launch();
    await launcher.until(/^✓ users\s+ready on/);
    // As `npm start | head -3` does once head has its lines: the next line npm start writes fails with EPIPE.
    launcher.child.stdout!.destroy();
    await launcher.exited;
    expect(processesWithEnv("DATA_DIR", launcher.dataDir)).toEqual([]);
  });
});
