// Runs `shopmesh overload` for real, small (its own mesh, 50 views in flight
// for 2 s, health polled throughout) and checks the reports it writes: every
// call accounted for, health answers from every service, no INTERNAL.
// Nothing here asserts speed.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import type { OverloadReport } from "../src/robustness/overload-report.js";

const main = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const outDir = mkdtempSync(join(tmpdir(), "shopmesh-overload-test-"));

function shopmesh(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", main, ...args], { timeout: 150_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

afterAll(() => rmSync(outDir, { recursive: true, force: true }));

describe("shopmesh overload", () => {
  it("accounts for every call and every health check, with no INTERNAL", { timeout: 180_000 }, async () => {
    const run = await shopmesh([
      "overload",
      "--seconds",
      "2",
      "--concurrency",
      "50",
      "--deadline",
      "3000",
      "--set",
      "LOG_LEVEL=info",
      "--set",
      "user-orders:MAX_CALLS_IN_FLIGHT=1",
      "--after-refusal",
      "20",
      "--out",
      outDir,
    ]);
    expect(run.stderr).toBe("");
    expect(run.code, run.stdout).toBe(0);
    expect(run.stdout).toContain(join(outDir, "overload.md"));

    const report = JSON.parse(readFileSync(join(outDir, "overload.json"), "utf8")) as OverloadReport;
    expect(report.settings).toMatchObject({
      seconds: 2,
      concurrency: 50,
      deadlineMs: 3000,
      budgetMs: 3000,
      env: { LOG_LEVEL: "info", "user-orders:MAX_CALLS_IN_FLIGHT": "1" },
      afterRefusal: 20,
      healthIntervalMs: 100,
    });
    // One slot in user-orders for 50 callers: it refuses, and says how soon after each call's arrival.
    expect(report.refused.count).toBeGreaterThan(0);
    // Each refusal says how long to wait before trying again.
    expect(report.pushback!.count).toBe(report.refused.count);
    expect(report.pushback!.p50Ms).toBeGreaterThan(0);
    expect(Object.keys(report.serverRefusals ?? {})).toEqual(["user-orders"]);
    expect(report.serverRefusals!["user-orders"]!.refused).toBe(report.refused.count);
    expect(report.calls).toBeGreaterThanOrEqual(50);
    const others = Object.values(report.otherCodes).reduce((sum, count) => sum + count, 0);
    expect(report.answered.count + report.refused.count + others).toBe(report.calls);
    expect(report.otherCodes.INTERNAL).toBeUndefined();
    // user-orders' own count of the views it answered OK, from its metrics: every OK a client got (and
    // any sent just as its client's deadline passed); the share is read at the largest histogram
    // bound within the 3 s deadline.
    expect(report.serverAnswered?.answered).toBeGreaterThanOrEqual(report.answered.count);
    expect(report.serverAnswered?.boundMs).toBe(2_500);
    // And its garbage-collection pauses, from the preload that reports its heap.
    expect(report.gcPauses?.maxMs).toBeGreaterThan(0);
    // How many are answered depends on the machine; the shares are shares either way.
    expect(report.answered.p99Ms).toBeGreaterThanOrEqual(report.answered.p50Ms);
    for (const share of [report.answered.withinBudgetPlus50, report.refused.within10Ms])
      expect(share >= 0 && share <= 1).toBe(true);
    expect(report.health.map((row) => row.service)).toEqual(["users", "products", "orders", "user-orders"]);
    for (const row of report.health) {
      expect(row.checks).toBeGreaterThan(0);
      expect(row.serving + row.notServing + Object.values(row.failures).reduce((sum, count) => sum + count, 0)).toBe(
        row.checks,
      );
    }
    expect(report.exited).toEqual([]);

    const markdown = readFileSync(join(outDir, "overload.md"), "utf8");
    for (const text of [
      "# Overload",
      "## Calls",
      "## Health",
      "| answered (OK) |",
      "| refused (RESOURCE_EXHAUSTED) |",
      "| user-orders |",
    ])
      expect(markdown).toContain(text);
  });

  it("reports without user-orders' own count when the services run without a metrics listener", {
    timeout: 180_000,
  }, async () => {
    const out = join(outDir, "no-metrics");
    const run = await shopmesh([
      "overload",
      "--seconds",
      "1",
      "--concurrency",
      "10",
      "--set",
      "METRICS_PORT=off",
      "--out",
      out,
    ]);
    expect(run.stderr).toBe("");
    expect(run.code, run.stdout).toBe(0);
    const report = JSON.parse(readFileSync(join(out, "overload.json"), "utf8")) as OverloadReport;
    expect(report.calls).toBeGreaterThan(0);
    expect(report.serverAnswered).toBeUndefined();
    expect(readFileSync(join(out, "overload.md"), "utf8")).not.toContain("In user-orders itself");
  });

  it("refuses an unknown --after-refusal, naming it", async () => {
    const run = await shopmesh(["overload", "--after-refusal", "later"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--after-refusal: expected pushback, at-once or a number of ms");
  });

  it("refuses a setting for a service that does not exist", async () => {
    const run = await shopmesh(["overload", "--set", "nosuch:MAX_CALLS_IN_FLIGHT=5"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--set: no service named nosuch");
  });

  it("refuses a malformed setting, naming the option", async () => {
    const run = await shopmesh(["overload", "--set", "max-calls=5"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--set: expected NAME=VALUE");
  });
});
