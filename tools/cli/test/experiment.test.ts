// Runs `shopmesh experiment --quick` end to end against its own mesh and
// checks the report it writes.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chartFiles, type ExperimentResults } from "../src/experiment/report.js";

const cli = fileURLToPath(new URL("../bin/shopmesh.mjs", import.meta.url));
// Away from npm start (50051..) and the experiment's default (50251..), so that both may run meanwhile.
const portBase = 50471;

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, "experiment", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("shopmesh experiment --quick", () => {
  const out = mkdtempSync(join(tmpdir(), "shopmesh-experiment-report-"));
  let result: Awaited<ReturnType<typeof run>>;
  let report: string;
  let results: ExperimentResults;

  beforeAll(async () => {
    const started = performance.now();
    result = await run(["--quick", "--out", out, "--port-base", String(portBase)]);
    if (result.code !== 0) throw new Error(`experiment exited with ${result.code}\n${result.stderr}`);
    // Quick mode is for CI: under a minute on this 2-core machine, with some room for a busy one.
    expect(performance.now() - started).toBeLessThan(90_000);
    report = readFileSync(join(out, "coupling.md"), "utf8");
    results = JSON.parse(readFileSync(join(out, "coupling.json"), "utf8")) as ExperimentResults;
  }, 150_000);
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("prints where the report is and a short summary", () => {
    expect(result.stdout).toContain(`Report: ${join(out, "coupling.md")}`);
    for (const topic of ["latency:", "availability:", "tail:", "outage:"]) expect(result.stdout).toContain(topic);
  });

  it("names the command and the machine, and has every scenario with a chart", () => {
    expect(report).toMatch(/Produced by `npm run experiment -- --quick`/);
    expect(report).toMatch(/Machine: \d+ × .+ GiB memory, .+ Node\.js \d+\.\d+/);
    for (const heading of ["## 1. Dependency latency", "## 2. Availability", "## 3. Tail amplification", "## 4. Outage"]) {
      expect(report).toContain(heading);
    }
    expect(report.match(/\*\*What it shows\.\*\*/g)).toHaveLength(4);
    for (const file of Object.values(chartFiles)) {
      expect(report).toContain(`](${file})`);
      const svg = readFileSync(join(out, file), "utf8");
      expect(svg.startsWith("<svg")).toBe(true);
      expect(svg).toContain("role-mark");
    }
  });

  it("measured every figure over a non-zero number of calls", () => {
    expect(results.latency.rows.length).toBeGreaterThanOrEqual(4);
    for (const row of results.latency.rows) {
      expect(row.n).toBeGreaterThan(0);
      expect(row.full).toBe(row.n);
    }
    expect(results.latency.monolith.n).toBeGreaterThan(0);
    expect(results.latency.agreement.agreed).toBe(results.latency.agreement.checked);
    for (const row of results.tail.rows) expect(row.n).toBeGreaterThan(0);
    expect(results.outage.n).toBeGreaterThan(0);
    expect(results.outage.duringOutage.degraded).toBeGreaterThan(0);
    expect(results.outage.counts.full).toBeGreaterThan(0);
  });

  it("finds every availability within the binomial tolerance of the product-of-availabilities prediction", () => {
    expect(results.availability.rows.length).toBeGreaterThanOrEqual(4);
    for (const row of results.availability.rows) {
      expect(row.n).toBeGreaterThan(0);
      for (const [kind, figure] of Object.entries(row.kinds)) {
        const context = `${row.variant}, q=${row.q}, ${kind}: measured ${figure.measured} vs ${figure.predicted} ± ${figure.tolerance} (N=${row.n})`;
        expect(Math.abs(figure.measured - figure.predicted), context).toBeLessThanOrEqual(3 * Math.sqrt((figure.predicted * (1 - figure.predicted)) / row.n) + 0.005);
      }
    }
    expect(report).toContain("3 * sqrt(p (1 - p) / N)");
  });

  it("shows tail amplification growing with fan-out", () => {
    const sweep = results.tail.rows.filter((r) => !r.hedged && r.p > 0);
    expect(sweep.length).toBeGreaterThanOrEqual(2);
    expect(sweep.at(-1)!.fanOut).toBeGreaterThan(sweep[0]!.fanOut);
    expect(results.tail.rows.some((r) => r.hedged && r.extraLoad > 0)).toBe(true);
  });
});

describe("shopmesh experiment with its ports busy", () => {
  let holder: Server;
  beforeAll(async () => {
    holder = createServer();
    await new Promise<void>((resolve) => holder.listen({ port: portBase + 100 + 2, host: "127.0.0.1" }, resolve));
  });
  afterAll(() => new Promise<void>((resolve) => holder.close(() => resolve())));

  it("refuses to start, naming the port", async () => {
    const out = mkdtempSync(join(tmpdir(), "shopmesh-experiment-busy-"));
    try {
      const { code, stderr } = await run(["--quick", "--out", out, "--port-base", String(portBase + 100)]);
      expect(code).toBe(1);
      expect(stderr).toContain(`port ${portBase + 102} (orders) is busy`);
      expect(stderr).toContain("--port-base");
      expect(existsSync(join(out, "coupling.md"))).toBe(false);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
