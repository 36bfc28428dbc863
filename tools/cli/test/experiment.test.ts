// Runs `shopmesh experiment --quick` end to end against its own mesh and
// checks the report it writes.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { busyPorts } from "../src/experiment/experiment-mesh.js";
import { chartFiles, type ExperimentResults } from "../src/experiment/report.js";
import { traceChartFiles } from "../src/experiment/trace-report.js";
import { binomialTolerance } from "../src/experiment/statistics.js";

const cli = fileURLToPath(new URL("../bin/shopmesh.mjs", import.meta.url));
// Away from npm start (50051.., admin 30051..) and the experiment's default (30251..), so that both may run meanwhile;
// below the ephemeral range (32768-60999), where an outgoing connection could hold a port. A base whose ports are
// free now, so that two checkouts running this test at once do not collide.
const portBase = await freeExperimentBase();

async function freeExperimentBase(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = 31000 + Math.floor(Math.random() * 1600);
    if ((await busyPorts(base)).length === 0 && (await busyPorts(base + 100)).length === 0) return base;
  }
  throw new Error("no free range of ports for the experiment between 31000 and 32700");
}

/** Experiments still running; a run the hook gave up on is told to stop (it then stops its mesh). */
const running = new Set<ChildProcess>();
afterAll(() => {
  for (const child of running) child.kill("SIGTERM");
});

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, "experiment", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    running.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("exit", (code) => {
      running.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("shopmesh experiment --quick", () => {
  const out = mkdtempSync(join(tmpdir(), "shopmesh-experiment-report-"));
  let result: Awaited<ReturnType<typeof run>>;
  let report: string;
  let results: ExperimentResults;

  beforeAll(async () => {
    // How long a quick run takes is printed by the run itself (and recorded in coupling.json), not asserted:
    // on a shared machine it measured 116 s where a quiet one takes under a minute.
    result = await run(["--quick", "--out", out, "--port-base", String(portBase)]);
    if (result.code !== 0) throw new Error(`experiment exited with ${result.code}\n${result.stderr}`);
    report = readFileSync(join(out, "coupling.md"), "utf8");
    results = JSON.parse(readFileSync(join(out, "coupling.json"), "utf8")) as ExperimentResults;
  }, 300_000);
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("prints where the report is and a short summary", () => {
    expect(result.stdout).toContain(`Report: ${join(out, "coupling.md")}`);
    for (const topic of ["latency:", "availability:", "tail:", "outage:", "eventual:", "staleness:", "traces:"])
      expect(result.stdout).toContain(topic);
  });

  it("names the command and the machine, and has every scenario with a chart", () => {
    expect(report).toMatch(/Produced by `npm run experiment -- --quick`/);
    expect(report).toMatch(/Machine: \d+ × .+ GiB memory, .+ Node\.js \d+\.\d+/);
    for (const heading of [
      "## 1. Dependency latency",
      "## 2. Availability",
      "## 3. Tail amplification",
      "## 4. Outage",
      "## 5. EVENTUAL beside STRONG",
      "## 6. Staleness",
      "### The reader down",
      "### A dependency down",
      "### One stream held back",
      "## 7. Traces",
    ]) {
      expect(report).toContain(heading);
    }
    // Sections 1 to 4 one each; section 5 one per table (latency, availability); section 6 one per table
    // (steady, reader down, products down, one stream held back).
    expect(report.match(/\*\*What it shows\.\*\*/g)).toHaveLength(10);
    // The EVENTUAL and staleness charts are written too, not only the STRONG ones.
    expect(readdirSync(out)).toEqual(expect.arrayContaining([chartFiles.eventual, chartFiles.staleness]));
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
        // The report's own tolerance (binomial standard errors plus 3 / N), so that test and report agree on "within".
        expect(Math.abs(figure.measured - figure.predicted), context).toBeLessThanOrEqual(
          binomialTolerance(figure.predicted, row.n),
        );
      }
    }
    expect(report).toContain("3 * sqrt(p (1 - p) / N)");
  });

  it("measures EVENTUAL views beside STRONG under the same faults: flat latency, every answer full", () => {
    const { catchUp, latency, availability } = results.eventual;
    for (const source of ["users", "products", "orders"] as const) expect(catchUp.heads[source]).toBeGreaterThan(0);
    expect(latency.rows.length).toBeGreaterThanOrEqual(4);
    for (const row of latency.rows) {
      expect(row.n).toBeGreaterThan(0);
      expect(row.full).toBe(row.n);
      expect(
        row.within,
        `EVENTUAL p50 ${row.p50} ms at ${row.delayed} +${row.delayMs} ms vs ${row.predictedP50} ± ${row.tolerance}`,
      ).toBe(true);
    }
    // The same delays as the STRONG sweep, so that every EVENTUAL row has a STRONG row beside it.
    for (const row of latency.rows)
      expect(
        results.latency.rows.some(
          (r) => r.mode === "parallel" && r.delayed === row.delayed && r.delayMs === row.delayMs,
        ),
      ).toBe(true);
    expect(availability.rows.length).toBeGreaterThanOrEqual(2);
    for (const row of availability.rows) {
      expect(row.n).toBeGreaterThan(0);
      expect(row.streamsConnected).toBe(row.n);
      for (const [kind, figure] of Object.entries(row.kinds)) {
        const context = `EVENTUAL, q=${row.q}, ${kind}: measured ${figure.measured} vs ${figure.predicted} (N=${row.n})`;
        expect(Math.abs(figure.measured - figure.predicted), context).toBeLessThanOrEqual(
          binomialTolerance(figure.predicted, row.n),
        );
      }
    }
    expect(results.outage.eventual.duringOutage.full).toBeGreaterThan(0);
    expect(results.outage.eventual.duringOutage.degraded + results.outage.eventual.duringOutage.failed).toBe(0);
  });

  it("measures staleness: steadily, with the reader down, and with products down", () => {
    const { staleness, outage } = results;
    expect(staleness.resolutionMs).toBeGreaterThan(0);
    for (const figures of [staleness.steady, staleness.after, outage.signUps.duringOutage, outage.signUps.outside]) {
      expect(figures.n).toBeGreaterThan(0);
      expect(figures.p50).toBeGreaterThan(0);
      expect(figures.p99).toBeGreaterThanOrEqual(figures.p50);
      expect(figures.max).toBeGreaterThanOrEqual(figures.p99);
    }
    // Writes made while user-orders was down wait for it: the oldest of them about the whole outage and restart.
    const o = staleness.outage;
    expect(o.staleness.n).toBeGreaterThan(0);
    expect(o.staleness.max).toBeGreaterThan(0.5 * (o.readyAtMs - o.killedAtMs));
    expect(o.staleness.max).toBeGreaterThan(10 * staleness.steady.p99);
    // Nothing written while the reader was down can be visible before it is ready again.
    expect(o.catchUpMs).toBeGreaterThan(0);
    expect(staleness.unseen).toBe(0);
    expect(staleness.writesFailed).toBe(0);
    // No order can be placed while products is down: orders prices every line from it.
    expect(outage.orderAttempts.length).toBeGreaterThan(0);
    for (const attempt of outage.orderAttempts) expect(attempt.code).toBe("UNAVAILABLE");
    expect(report).toMatch(/orders, steady \(before the reader was killed\) \| \d+ \| \d/);
    expect(outage.ordersBack?.afterReadyMs).toBeGreaterThanOrEqual(0);
  });

  it("shows an open stream unaffected by a StreamEvents fault, and an EVENTUAL view incomplete while a new one is refused", () => {
    const { productsConnectedUnderFault, probe } = results.staleness.streamFault;
    expect(probe.error).toBeUndefined();
    expect(productsConnectedUnderFault).toBe(true);
    expect(probe.orderSeenMs).toBeGreaterThan(0);
    expect(probe.detailsSeenMs).toBeGreaterThan(probe.faultLiftedMs!);
    expect(probe.incompleteAnswers).toBeGreaterThan(0);
    // stream_lags explains each of them: products disconnected while the fault held, and connected but
    // behind (applied below head) for the moment between reconnecting and applying the held-back event.
    expect(probe.incompleteWithProductsBehind).toBe(probe.incompleteAnswers);
    expect(probe.incompleteWithProductsDisconnected).toBeGreaterThan(0);
    expect(probe.incompleteWithProductsDisconnected).toBeLessThanOrEqual(probe.incompleteAnswers);
    // Each of them says so with a products degradation (NO_PRODUCT_DETAILS), as a STRONG view would.
    expect(probe.incompleteWithDegradation).toBe(probe.incompleteAnswers);
  });

  it("shows tail amplification growing with fan-out", () => {
    const sweep = results.tail.rows.filter((r) => !r.hedged && r.p > 0);
    expect(sweep.length).toBeGreaterThanOrEqual(2);
    expect(sweep.at(-1)!.fanOut).toBeGreaterThan(sweep[0]!.fanOut);
    expect(results.tail.rows.some((r) => r.hedged && r.extraLoad > 0)).toBe(true);
  });

  it("draws three traced views from the spans the services exported: one trace across the four services each", () => {
    const { views } = results.traces;
    expect(views.map((v) => v.name)).toEqual(["healthy", "products-hung", "hedged"]);
    const server = (spans: (typeof views)[number]["spans"], service: string, method: string) =>
      spans.filter((s) => s.kind === "server" && s.service === service && s.name.endsWith(`/${method}`));
    for (const view of views) {
      expect(view.complete, view.name).toBe(true);
      expect(view.spans.every((s) => s.traceId === view.traceId)).toBe(true);
      const [root] = server(view.spans, "user-orders", "GetUserOrders");
      expect(root, view.name).toBeDefined();
      // A client span in user-orders for each dependency, each continued by the dependency's server span.
      for (const [dependency, method] of [
        ["users", "GetUser"],
        ["orders", "ListOrders"],
        ["products", "BatchGetProducts"],
      ] as const) {
        const clients = view.spans.filter(
          (s) => s.kind === "client" && s.parentSpanId === root!.spanId && s.attributes["peer.service"] === dependency,
        );
        expect(clients.length, `${view.name} → ${dependency}`).toBeGreaterThan(0);
        for (const client of clients) {
          expect(client.service).toBe("user-orders");
          expect(server(view.spans, dependency, method).some((s) => s.parentSpanId === client.spanId)).toBe(true);
        }
      }
      expect(report).toContain(`](${traceChartFiles[view.name]})`);
      const svg = readFileSync(join(out, traceChartFiles[view.name]), "utf8");
      expect(svg.startsWith("<svg")).toBe(true);
      expect(svg).toContain("user-orders GetUserOrders");
    }
    const [healthy, hung, hedged] = views;
    expect(healthy!.degradations).toEqual([]);
    // Products hangs: its request ends DEADLINE_EXCEEDED, and the view falls back instead of failing.
    const products = hung!.spans.filter((s) => s.kind === "client" && s.attributes["peer.service"] === "products");
    expect(products.map((s) => s.attributes["rpc.grpc.status_code"])).toEqual([4]);
    expect(hung!.code).toBe("OK");
    expect(hung!.degradations).toEqual([
      expect.objectContaining({ dependency: "products", fallback: "NO_PRODUCT_DETAILS" }),
    ]);
    const root = server(hung!.spans, "user-orders", "GetUserOrders")[0]!;
    const degradation = root.events.find((e) => e.name === "degradation");
    expect(degradation?.timeMs).toBeGreaterThanOrEqual(products[0]!.endMs);
    expect(readFileSync(join(out, traceChartFiles["products-hung"]), "utf8")).toContain("DEADLINE_EXCEEDED");
    // The hedged view sent a hedge to products.
    expect(hedged!.spans.some((s) => s.kind === "client" && s.attributes["shopmesh.hedge"] === true)).toBe(true);
    // Only the traced calls were recorded: the rest of the run's load was sampled out.
    expect(results.traces.spansReceived).toBeLessThan(200);
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
