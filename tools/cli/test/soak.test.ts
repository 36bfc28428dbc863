// Runs `shopmesh soak` for real, briefly (its own mesh, the capacity probe,
// the fault schedule, the end-of-run write check) and checks the reports it
// writes: every window and process present, the faults switched, no lost
// write and no unexpected error. Nothing here asserts speed.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import type { SoakReport } from "../src/robustness/soak-report.js";

const main = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const outDir = mkdtempSync(join(tmpdir(), "shopmesh-soak-test-"));

function shopmesh(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", main, ...args], { timeout: 150_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

afterAll(() => rmSync(outDir, { recursive: true, force: true }));

describe("shopmesh soak", () => {
  it("runs a short soak and reports every window, process and write, with nothing lost and nothing unexpected", {
    timeout: 180_000,
  }, async () => {
    const run = await shopmesh(["soak", "--seconds", "15", "--out", outDir]);
    expect(run.stderr).toBe("");
    expect(run.code, run.stdout).toBe(0);
    expect(run.stdout).toMatch(/capacity probe: \d+ calls\/s/);
    expect(run.stdout).toMatch(/soak PASS: \d+ calls, 0 unexpected errors, 0 lost writes/);
    expect(run.stdout).toContain(join(outDir, "soak.md"));

    const report = JSON.parse(readFileSync(join(outDir, "soak.json"), "utf8")) as SoakReport;
    expect(report.verdict).toBe("PASS");
    expect(report.settings).toMatchObject({ durationSeconds: 15, windowSeconds: 3, rateFrom: "probe" });
    expect(report.settings.rate).toBeGreaterThan(0);
    expect(report.settings.rate).toBeCloseTo(Math.max(2, Math.round(report.settings.probedCapacity! / 2)), 0);
    expect(report.windows.map((window) => window.index)).toEqual([0, 1, 2, 3, 4]);
    for (const window of report.windows) {
      expect(window.calls).toBeGreaterThan(0);
      expect(window.p99Ms).toBeGreaterThanOrEqual(window.p50Ms);
      expect(Object.keys(window.memory).sort()).toEqual(["orders", "products", "user-orders", "users"]);
    }
    expect(report.totals.calls).toBe(report.windows.reduce((sum, window) => sum + window.calls, 0));
    // Every fault of the cycle was switched on and off again.
    expect(new Set(report.schedule.map((phase) => phase.kind))).toEqual(
      new Set(["products-latency", "users-errors", "products-hang"]),
    );
    for (const phase of report.schedule) expect(phase.toSeconds).toBeGreaterThan(phase.fromSeconds);

    expect(report.totals.unexpected).toBe(0);
    expect(report.totals.unexpectedByCall).toEqual({});
    expect(report.totals.errors.INTERNAL).toBeUndefined();
    expect(report.totals.errors.UNKNOWN).toBeUndefined();
    expect(report.writes.acknowledged).toBeGreaterThan(8 * 2);
    expect(report.writes).toMatchObject({
      projectionCaughtUp: true,
      missingFromOrders: 0,
      missingFromView: 0,
      duplicatedInView: 0,
    });
    expect(report.lostWrites).toBe(0);
    expect(report.exited).toEqual([]);
    for (const service of ["users", "products", "orders", "user-orders"]) {
      const memory = report.memory[service]!;
      expect(memory.peakRssMiB).toBeGreaterThan(0);
      expect(memory.samples).toBeGreaterThan(5);
      expect(Number.isFinite(memory.rssSlopeMiBPerMinute)).toBe(true);
      expect(memory.lastHeapUsedMiB).toBeGreaterThan(0);
    }

    const markdown = readFileSync(join(outDir, "soak.md"), "utf8");
    for (const heading of [
      "# Soak",
      "## Load",
      "## Faults",
      "## Per window (3 s)",
      "## By operation, whole run",
      "## Memory per process",
      "## Writes",
    ]) {
      expect(markdown).toContain(heading);
    }
    expect(markdown).toContain("**PASS**");
  });

  it("refuses a malformed option, naming it", async () => {
    const run = await shopmesh(["soak", "--minutes", "soon"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--minutes: expected a number");
  });
});
