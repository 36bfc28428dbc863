// Runs `shopmesh bench --quick` for real (the mesh, the bare baseline, a
// second of load per target) and checks the reports it writes: every target
// and row present, figures non-zero. Nothing here asserts speed.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import type { BenchReport } from "../src/bench/bench-results.js";
import { serviceNodeFlags } from "../src/mesh/local-mesh.js";

const main = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const outDir = mkdtempSync(join(tmpdir(), "shopmesh-bench-test-"));
// Away from the default 30151 so a bench running beside the tests is not disturbed; below the ephemeral range.
const portBase = 31000 + (process.pid % 60) * 15;

function shopmesh(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", main, ...args], { timeout: 170_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

afterAll(() => rmSync(outDir, { recursive: true, force: true }));

describe("shopmesh bench", () => {
  it("writes a JSON and a markdown report with every target, row and check", { timeout: 180_000 }, async () => {
    // --other-node with this very Node.js: the second half's path (stop, start on it, seed, measure) runs.
    const run = await shopmesh([
      "bench",
      "--quick",
      "--out",
      outDir,
      "--port-base",
      String(portBase),
      "--other-node",
      process.execPath,
    ]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(join(outDir, "bench.md"));
    expect(run.stdout).toMatch(/targets:/);

    const report = JSON.parse(readFileSync(join(outDir, "bench.json"), "utf8")) as BenchReport;
    expect(report.settings.quick).toBe(true);
    expect(report.machine.cpus).toBeGreaterThan(0);
    expect(report.command).toContain("bench --quick");
    const keys = [
      "bare",
      "bare.tls",
      "users.GetUser",
      "products.GetProduct",
      "orders.ListOrders",
      "user-orders.GetUserOrders",
      "user-orders.GetUserOrders.eventual",
      "products.GetProduct.control",
      "products.GetProduct.plaintext",
      "products.GetProduct.lean",
      "products.GetProduct.traced",
      "users.GetUser.connect-node",
      "products.GetProduct.connect-node",
      "orders.ListOrders.connect-node",
      "user-orders.GetUserOrders.connect-node",
    ];
    expect(report.steps.map((step) => step.target).sort()).toEqual([...keys].sort());
    // Each row is read against the bare server over its own transport: only the plaintext ones against plaintext.
    for (const step of report.steps)
      expect(step.baseline, step.target).toBe(
        step.target === "bare" || step.target === "products.GetProduct.plaintext" ? "bare" : "bare.tls",
      );
    // The traced products process exported its spans to the collector stand-in.
    expect(report.otlpExport?.exports).toBeGreaterThan(0);
    expect(report.otlpExport?.bytes).toBeGreaterThan(0);
    for (const step of report.steps) {
      expect(step.concurrency).toBe(report.settings.concurrency[0]);
      expect(step.errors, `${step.target}: ${step.firstError}`).toBe(0);
      expect(step.calls).toBeGreaterThan(0);
      expect(step.callsPerSecond).toBeGreaterThan(0);
      expect(step.ratioToBaseline).toBeGreaterThan(0);
      for (const value of Object.values(step.latencyMs)) expect(value).toBeGreaterThan(0);
      // CPU is read for every process the call involves, and the parts add up to the total.
      const parts = Object.values(step.serverCpuMicrosPerCallByProcess);
      expect(parts.length, step.target).toBe(
        step.target.startsWith("user-orders.GetUserOrders") && step.target !== "user-orders.GetUserOrders.eventual"
          ? 4
          : 1,
      );
      expect(parts.reduce((sum, micros) => sum + micros, 0)).toBeCloseTo(step.serverCpuMicrosPerCall!, 6);
    }
    expect(report.rss.map((row) => row.process).sort()).toEqual(
      [
        "bare-baseline",
        "orders",
        "products",
        "products-control",
        "products-lean",
        "products-plaintext",
        "products-traced",
        "products-connect-node",
        "orders-connect-node",
        "user-orders",
        "user-orders-connect-node",
        "users",
        "users-connect-node",
      ].sort(),
    );
    for (const row of report.rss) {
      expect(row.peakMiB).toBeGreaterThan(0);
      expect(row.ratioToBaseline).toBeGreaterThan(0);
    }
    // The baselines and main reads measured again with every server on the other Node.js, each against its own bare server.
    expect(report.otherNode?.node).toBe(process.version);
    // Each half names the flags its services got on its release; here both halves ran on this one.
    expect(report.settings.serviceNodeFlags).toEqual(serviceNodeFlags(process.versions.node));
    expect(report.otherNode?.serviceNodeFlags).toEqual(serviceNodeFlags(process.versions.node));
    expect(report.otherNode?.steps.map((step) => step.target)).toEqual([
      "bare",
      "bare.tls",
      "users.GetUser",
      "products.GetProduct",
      "orders.ListOrders",
      "user-orders.GetUserOrders",
      "user-orders.GetUserOrders.eventual",
    ]);
    for (const step of report.otherNode?.steps ?? []) {
      expect(step.errors, `${step.target}: ${step.firstError}`).toBe(0);
      expect(step.ratioToBaseline).toBeGreaterThan(0);
    }
    expect(report.otherNode?.rss.map((row) => row.process)).toEqual([
      "users",
      "products",
      "orders",
      "user-orders",
      "bare-baseline",
    ]);
    // The targets are read on the other release's rows as well; this test's "other" Node.js is
    // the bench client's own, so the view's calls alone are priced there too.
    expect(report.otherNode?.checks.map((check) => check.unit)).toEqual(report.checks.map((check) => check.unit));
    expect(report.otherNode?.checks.find((check) => check.unit.includes("dependencies"))?.detail).toContain(
      "with empty calls alone",
    );
    expect(report.checks.map((check) => check.unit)).toEqual([
      "share of baseline calls/s",
      "share of baseline calls/s",
      "share of baseline calls/s",
      "share of baseline calls/s",
      "µs of server CPU per call",
      "multiple of the dependencies' CPU",
      "multiple of baseline peak RSS",
    ]);
    for (const check of report.checks) expect(check.measured).toBeGreaterThan(0);

    const markdown = readFileSync(join(outDir, "bench.md"), "utf8");
    for (const heading of [
      "## Targets",
      "## bare grpc-js server, empty unary",
      "## bare grpc-js server, empty unary, over TLS",
      "## users.GetUser",
      "## products.GetProduct",
      "## orders.ListOrders",
      "## user-orders.GetUserOrders",
      "## user-orders.GetUserOrders, EVENTUAL",
      "## products.GetProduct, a second process",
      "## products.GetProduct, without TLS",
      "## products.GetProduct, without metrics",
      "## products.GetProduct, traced and exported",
      "## Against the connect-node stack",
      "## users.GetUser on connect-node",
      "## user-orders.GetUserOrders on connect-node",
      "## Memory (RSS)",
      `## Node.js ${process.version} and ${process.version} side by side`,
      `### Targets on Node.js ${process.version}`,
    ]) {
      expect(markdown).toContain(heading);
    }
    expect(markdown).toMatch(/\| (PASS|SHORT) \|/);
    const flags = `\`${serviceNodeFlags(process.versions.node).join(" ")}\``;
    expect(markdown).toContain(`the services with the flags every local mesh gives them on this Node.js (${flags})`);
    expect(markdown).toContain(`and the services' flags for that release (${flags})`);
    expect(markdown).toMatch(
      /By process: user-orders [\d,]+ µs, users [\d,]+ µs, orders [\d,]+ µs, products [\d,]+ µs\./,
    );
    // What TLS costs per call, against the same server's plaintext port in the same run.
    expect(markdown).toMatch(
      /TLS is the only difference from the bare server's plaintext port in the same process: it adds -?[\d,]+ µs of server CPU/,
    );
    expect(markdown).toMatch(/would then give at most [\d,]+ calls\/s, [\d.]+ % of the baseline's rate/);
    // The aggregator's check gives the ratio its four calls alone would give, from the bare rows of the same run.
    expect(markdown).toMatch(
      /with empty calls alone \(user-orders serving 1 and sending 3, its dependencies serving 3; [\d,]+ µs per call served by the bare server, [\d,]+ µs per call sent by the bench client\) the ratio would be [\d.]+x/,
    );
    // What each products variant's one difference costs, against the control in the same run,
    // and how far the control is from the mesh's own products process.
    expect(markdown.match(/Against the control \(a second products process with nothing changed\)/g)).toHaveLength(3);
    expect(markdown).toMatch(
      /Against the mesh's own products process at \d+ in flight in the same run it did [\d.]+ %/,
    );
    expect(markdown).toMatch(/the collector stand-in received [\d,]+ exports/);
    // shopmesh against the same four reads on the connect-node stack, as multiples, in the same run.
    expect(markdown).toMatch(/\| products\.GetProduct \| \d+ \| [\d,]+ \| [\d,]+ \| [\d.]+x \|/);
    expect(markdown).toMatch(/shopmesh did [\d.]+x connect-node's calls\/s on users\.GetUser/);
  });

  it("refuses to start, naming the port, when one of its ports is busy", async () => {
    const holder: Server = createServer();
    const busyPort = portBase + 1000 + 1;
    await new Promise<void>((resolve) => holder.listen(busyPort, "127.0.0.1", resolve));
    try {
      const run = await shopmesh(["bench", "--quick", "--out", outDir, "--port-base", String(busyPort - 1)]);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`port ${busyPort} (products) is busy`);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });
});
