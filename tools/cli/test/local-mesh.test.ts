// LocalMesh over real service processes: a failed start leaves nothing running.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { LocalMesh } from "../src/mesh/local-mesh.js";

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
  it("stops a service that became ready beside one that failed to start", { timeout: 90_000 }, async () => {
    const start = LocalMesh.start({
      dataDir,
      services: ["users", "products"],
      spawn: (service) => ({
        keepLogs: false,
        // users "fails" at once (given no time to get ready); products, started beside it, comes up later.
        ...(service === "users" ? { readyTimeoutMs: 1 } : {}),
        onLog: (entry) => {
          if (entry.msg === "ready" && typeof entry.pid === "number") readyPids.set(service, entry.pid);
        },
      }),
    });
    await expect(start).rejects.toThrow(/users\/src\/main\.ts did not become ready in time/);
    // Before or after the failure was reported, products gets ready; then it must not stay.
    await vi.waitFor(() => expect(readyPids.has("products")).toBe(true), { timeout: 60_000, interval: 100 });
    await vi.waitFor(() => expect(alive(readyPids.get("products")!)).toBe(false), { timeout: 10_000, interval: 100 });
  });
});
