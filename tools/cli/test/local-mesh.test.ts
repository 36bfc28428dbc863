// LocalMesh over real service processes: a failed or abandoned start leaves nothing running.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it, vi } from "vitest";
import { processesWithEnv } from "../../../test/support/processes-with-env.js";
import { defaultServiceNodeFlags, LocalMesh, nodeVersionOf, serviceNodeFlags } from "../src/mesh/local-mesh.js";
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
  it("are accepted by the Node.js that runs the tests, and so are the other release line's", () => {
    for (const version of [process.versions.node, "20.20.2", "24.18.1"]) {
      const run = spawnSync(process.execPath, [...defaultServiceNodeFlags(version), "-p", "'ok'"], {
        encoding: "utf8",
      });
      expect(run.stderr, version).toBe("");
      expect(run.status, version).toBe(0);
      expect(run.stdout.trim()).toBe("ok");
    }
  });

  it("cap the young generation by release line, and refuse what is not a version", () => {
    expect(defaultServiceNodeFlags("v20.20.2")).toEqual(["--max-semi-space-size=4", "--heap-growing-percent=100"]);
    expect(defaultServiceNodeFlags("24.18.1")).toEqual(["--max-semi-space-size=16", "--heap-growing-percent=100"]);
    expect(() => defaultServiceNodeFlags("lts")).toThrow(/not a Node.js version: "lts"/);
  });
});

describe("serviceNodeFlags", () => {
  it("takes SHOPMESH_SERVICE_NODE_FLAGS in place of the defaults, an empty one meaning none", () => {
    expect(serviceNodeFlags("24.18.1", {})).toEqual(defaultServiceNodeFlags("24.18.1"));
    expect(serviceNodeFlags("24.18.1", { SHOPMESH_SERVICE_NODE_FLAGS: "" })).toEqual([]);
    expect(serviceNodeFlags("20.20.2", { SHOPMESH_SERVICE_NODE_FLAGS: " --stack-size=900   --no-opt " })).toEqual([
      "--stack-size=900",
      "--no-opt",
    ]);
  });

  it("are what a mesh's service process runs with, for the Node.js it runs on", { timeout: 60_000 }, async () => {
    const ownDir = mkdtempSync(join(tmpdir(), "shopmesh-local-mesh-"));
    // A node that says it is the other release line (and runs this one): the flags must follow
    // the version of the node the service runs on, not the one running the mesh.
    const otherLine = process.versions.node.startsWith("24.") ? "20.20.2" : "24.18.1";
    const node = join(ownDir, "node");
    writeFileSync(
      node,
      `#!/bin/sh\nif [ "$1" = -p ] && [ "$2" = process.versions.node ]; then echo ${otherLine}; exit 0; fi\nexec "${process.execPath}" "$@"\n`,
      { mode: 0o755 },
    );
    let spawnWith = node;
    let mesh: LocalMesh | undefined;
    try {
      expect(nodeVersionOf(node)).toBe(otherLine);
      expect(defaultServiceNodeFlags(otherLine)).not.toEqual(defaultServiceNodeFlags(process.versions.node));
      mesh = await LocalMesh.start({
        dataDir: ownDir,
        services: ["users"],
        tls: false,
        spawn: () => ({ keepLogs: false, node: spawnWith }),
      });
      const pid = mesh.processes.get("users")!.child.pid!;
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
      expect(argv.slice(1, argv.indexOf("--import"))).toEqual(serviceNodeFlags(otherLine));

      // A node that cannot be asked its version: spawn rejects (callers that only catch the promise see it).
      spawnWith = join(ownDir, "no-such-node");
      let spawned: Promise<unknown> | undefined;
      expect(() => {
        spawned = mesh!.spawn("users");
      }).not.toThrow();
      await expect(spawned).rejects.toThrow(/ENOENT/);
    } finally {
      await mesh?.stop();
      for (const pid of processesWithEnv("DATA_DIR", ownDir)) process.kill(pid, "SIGKILL");
      rmSync(ownDir, { recursive: true, force: true });
    }
  });
});
