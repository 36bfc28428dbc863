// LocalMesh over real service processes: a failed or abandoned start leaves nothing running.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it, vi } from "vitest";
import { processesWithEnv } from "../../../test/support/processes-with-env.js";
import { defaultServiceNodeFlags, LocalMesh } from "../src/mesh/local-mesh.js";
import { spawnService } from "../src/process/spawn-service.js";

const dataDir = mkdtempSync(join(tmpdir(), "shopmesh-local-mesh-"));
const readyPids = new Map<string, number>();
afterAll(() => {
  for (const pid of readyPids.values()) if (alive(pid)) process.kill(pid, "SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("LocalMesh.start", () => {
  it("stops a service that became ready before one that failed to start", { timeout: 90_000 }, async () => {
    const start = LocalMesh.start({
      dataDir,
      services: ["users", "products"],
      spawn: (service) => ({
        keepLogs: false,
        // users comes up first (every service fetches its signing keys from it); products then "fails" at once.
        ...(service === "products" ? { readyTimeoutMs: 1 } : {}),
        onLog: (entry) => {
          if (entry.msg === "ready" && typeof entry.pid === "number") readyPids.set(service, entry.pid);
        },
      }),
    });
    await expect(start).rejects.toThrow(/products\/src\/main\.ts did not become ready in time/);
    // users was ready before products failed; it must not stay.
    expect(readyPids.has("users")).toBe(true);
    await vi.waitFor(() => expect(alive(readyPids.get("users")!)).toBe(false), { timeout: 10_000, interval: 100 });
  });

  it("stops every service already started when one exits at start on a bad setting", { timeout: 90_000 }, async () => {
    const ownDir = mkdtempSync(join(tmpdir(), "shopmesh-local-mesh-"));
    try {
      const ready: string[] = [];
      const start = LocalMesh.start({
        dataDir: ownDir,
        tls: false,
        // user-orders starts last, after the other three are ready, and refuses this setting at once.
        env: { "user-orders": { RETRY_ATTEMPTS: "bogus" } },
        spawn: (service) => ({
          keepLogs: false,
          onLog: (entry) => {
            if (entry.msg === "ready") ready.push(service);
          },
        }),
      });
      await expect(start).rejects.toThrow(
        /user-orders\/src\/main\.ts exited with 2 before it was ready[\s\S]*RETRY_ATTEMPTS/,
      );
      expect(ready).toEqual(["users", "products", "orders"]);
      // start rejects once they have exited: nothing with this mesh's DATA_DIR is left, not even for a moment.
      expect(processesWithEnv("DATA_DIR", ownDir)).toEqual([]);
    } finally {
      for (const pid of processesWithEnv("DATA_DIR", ownDir)) process.kill(pid, "SIGKILL");
      rmSync(ownDir, { recursive: true, force: true });
    }
  });

  it("abandons a start on abort: the service starting and those already ready are stopped", {
    timeout: 90_000,
  }, async () => {
    const ownDir = mkdtempSync(join(tmpdir(), "shopmesh-local-mesh-"));
    const abandon = new AbortController();
    try {
      const start = LocalMesh.start({
        dataDir: ownDir,
        tls: false,
        signal: abandon.signal,
        spawn: (service) => ({
          keepLogs: false,
          // Abort as soon as users is ready: products is then starting, orders and user-orders not yet.
          onLog: (entry) => {
            if (service === "users" && entry.msg === "ready") abandon.abort();
          },
        }),
      });
      await expect(start).rejects.toThrow(/abandoned/);
      expect(processesWithEnv("DATA_DIR", ownDir)).toEqual([]);
    } finally {
      for (const pid of processesWithEnv("DATA_DIR", ownDir)) process.kill(pid, "SIGKILL");
      rmSync(ownDir, { recursive: true, force: true });
    }
  });
});

describe("ServiceProcess.stop", () => {
  it("sends SIGKILL to a process still running killAfterMs after SIGTERM", { timeout: 30_000 }, async () => {
    const entry = fileURLToPath(new URL("./fixtures/ignores-sigterm.ts", import.meta.url));
    const stuck = await spawnService({ entry });
    const started = performance.now();
    await stuck.stop("SIGTERM", { killAfterMs: 300 });
    expect(stuck.child.signalCode).toBe("SIGKILL");
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
  });
});

describe("defaultServiceNodeFlags", () => {
  // node refuses an unknown V8 flag ("bad option", exit 9): every service would fail to start.
  it("are accepted by the Node.js that runs the tests", () => {
    const run = spawnSync(process.execPath, [...defaultServiceNodeFlags, "-p", "'ok'"], {
      encoding: "utf8",
    });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
    expect(run.stdout.trim()).toBe("ok");
  });
});
