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
});
