// The Prometheus configuration and rules shipped in deploy/prometheus are
// valid, and the rules' own unit tests (alerts that fire and stay quiet,
// recorded error ratios) pass, as promtool checks them.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { promtoolProgram } from "../support/prometheus.js";

const deployDir = fileURLToPath(new URL("../../deploy/prometheus/", import.meta.url));
const promtool = promtoolProgram();

function run(...args: string[]) {
  return spawnSync(promtool.path!, args, { cwd: deployDir, encoding: "utf8", timeout: 60_000 });
}

describe.skipIf(promtool.missing)("deploy/prometheus under promtool", () => {
  it("has valid recording and alerting rules", () => {
    const result = run("check", "rules", "shopmesh-rules.yml");
    expect(result.status, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it("has a valid scrape configuration that loads the rules", () => {
    const result = run("check", "config", "prometheus.yml");
    expect(result.status, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain("SUCCESS: 1 rule files found");
  });

  it("passes the rules' unit tests", () => {
    const result = run("test", "rules", "shopmesh-rules.test.yml");
    expect(result.status, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain("SUCCESS");
  });
});
