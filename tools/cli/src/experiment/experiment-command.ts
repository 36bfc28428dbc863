import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem, type } from "node:os";
import { join, relative } from "node:path";
import {
  availabilityChart,
  eventualChart,
  latencyChart,
  outageChart,
  renderSvg,
  stalenessChart,
  tailChart,
} from "./charts.js";
import { adminToken, fullSize, quickSize, seedDataset } from "./dataset.js";
import { usageFailure } from "../command-line.js";
import { busyPortLines } from "../mesh/port-check.js";
import { busyPorts, ExperimentMesh } from "./experiment-mesh.js";
import { experimentUsage, readExperimentSettings, type ExperimentSettings } from "./experiment-settings.js";
import { MonolithDatabase } from "./monolith.js";
import { Progress } from "./progress.js";
import { chartFiles, renderReport, summaryLines, type ExperimentResults } from "./report.js";
import type { ScenarioContext } from "./scenario-context.js";
import { availability } from "./scenarios/availability.js";
import { dependencyLatency } from "./scenarios/dependency-latency.js";
import { eventualConsistency } from "./scenarios/eventual-consistency.js";
import { outage } from "./scenarios/outage.js";
import { staleness } from "./scenarios/staleness.js";
import { tailAmplification } from "./scenarios/tail-amplification.js";
import { startHedgingAggregator, traces } from "./scenarios/traces.js";
import { traceCharts } from "./trace-report.js";
import { startOtlpReceiver, type OtlpReceiver } from "../tracing/otlp-receiver.js";

/** Runs `shopmesh experiment`; returns the exit code. */
export async function experiment(args: string[]): Promise<number> {
  let settings: ExperimentSettings | undefined;
  try {
    settings = readExperimentSettings(args);
  } catch (error) {
    return usageFailure("experiment", error);
  }
  if (settings === undefined) {
    process.stdout.write(`${experimentUsage}\n`);
    return 0;
  }
  const { outDir, portBase, quick } = settings;

  const busy = await busyPorts(portBase);
  if (busy.length > 0) {
    for (const line of busyPortLines(busy, "--port-base <first port>")) process.stderr.write(`${line}\n`);
    process.stderr.write("shopmesh experiment: not started.\n");
    return 1;
  }

  const startedAt = new Date();
  const loadAtStart = loadavg()[0]!;
  const started = performance.now();
  const dataDir = mkdtempSync(join(tmpdir(), "shopmesh-experiment-"));
  const progress = new Progress();
  let mesh: ExperimentMesh | undefined;
  let monolith: MonolithDatabase | undefined;
  let receiver: OtlpReceiver | undefined;
  let interrupted = false;
  const cleanUp = async (signal: NodeJS.Signals) => {
    monolith?.close();
    monolith = undefined;
    await mesh?.stop(signal).catch(() => undefined);
    mesh = undefined;
    await receiver?.close();
    receiver = undefined;
    rmSync(dataDir, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    progress.end();
    process.stderr.write(`\n${signal}: stopping the experiment's services...\n`);
    void cleanUp("SIGKILL").finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    process.stderr.write(
      `shopmesh experiment${quick ? " --quick" : ""}: mesh on 127.0.0.1:${portBase}-${portBase + 3}, data in ${dataDir}, report to ${outDir}\n`,
    );
    progress.begin("starting the mesh", 1);
    receiver = await startOtlpReceiver();
    mesh = await ExperimentMesh.start(dataDir, portBase);
    progress.end("users, products, orders, user-orders ready");
    // Started now, while seeding keeps the machine busy anyway, so that the traces step does not
    // wait seconds for it; it stays idle until then, and the mesh stops it.
    const hedgingAggregator = startHedgingAggregator(mesh, receiver.endpoint);

    const size = quick ? quickSize : fullSize;
    progress.begin("seeding", size.products + size.users * (1 + size.ordersPerUser));
    const dataset = await seedDataset(mesh, size, (done) => progress.update(done));
    progress.end(`${dataset.users.length} users, ${dataset.products.length} products, ${dataset.orders.length} orders`);

    monolith = new MonolithDatabase(join(dataDir, "monolith.sqlite"), dataset);
    const monolithCounts = monolith.counts();

    const liveMesh = mesh;
    const context: ScenarioContext = { mesh: liveMesh, dataset, progress, quick, token: () => adminToken(liveMesh) };
    // Ordered so that user-orders restarts as rarely as possible: the EVENTUAL sweep runs with the
    // settings the mesh starts with, availability ends, and the outage, the staleness run (which
    // kills and restarts user-orders itself) and the tail sweep begin, with the default settings.
    // The EVENTUAL sweep comes first so that it also measures how soon the projection has caught
    // up with the seeding.
    const eventualResult = await eventualConsistency(context);
    const latency = await dependencyLatency(context, monolith);
    const availabilityResult = await availability(context);
    const outageResult = await outage(context);
    const stalenessResult = await staleness(context);
    const tail = await tailAmplification(context);
    // Last: it restarts the services with tracing on, which nothing measured before may pay for.
    const tracesResult = await traces(context, receiver, hedgingAggregator);

    const cpuList = cpus();
    const results: ExperimentResults = {
      run: {
        command: `npm run experiment${quick ? " -- --quick" : ""}`,
        quick,
        startedAt: startedAt.toISOString(),
        seconds: (performance.now() - started) / 1000,
        machine: {
          cpu: cpuList[0]?.model.trim() ?? "unknown",
          cores: cpuList.length,
          memoryGiB: totalmem() / 2 ** 30,
          node: process.versions.node,
          os: `${type()} ${release()}`,
          loadAverage: { start: loadAtStart, end: loadavg()[0]! },
        },
        monolithCounts,
      },
      dataset: { size: dataset.size, seconds: dataset.seconds },
      latency,
      availability: availabilityResult,
      tail,
      outage: outageResult,
      eventual: eventualResult,
      staleness: stalenessResult,
      traces: tracesResult,
    };

    progress.begin("writing the report", 1);
    mkdirSync(outDir, { recursive: true });
    const charts = {
      latency: latencyChart(latency),
      availability: availabilityChart(availabilityResult),
      tail: tailChart(tail),
      outage: outageChart(outageResult),
      eventual: eventualChart(latency, eventualResult),
      staleness: stalenessChart(stalenessResult, outageResult),
    };
    for (const [name, spec] of Object.entries(charts)) {
      writeFileSync(join(outDir, chartFiles[name as keyof typeof chartFiles]), await renderSvg(spec));
    }
    const waterfalls = traceCharts(tracesResult);
    for (const { file, spec } of waterfalls) writeFileSync(join(outDir, file), await renderSvg(spec));
    const reportPath = join(outDir, "coupling.md");
    writeFileSync(reportPath, renderReport(results));
    writeFileSync(join(outDir, "coupling.json"), `${JSON.stringify(results, null, 2)}\n`);
    progress.end(`${Object.keys(charts).length} charts, ${waterfalls.length} trace waterfalls`);

    const shown = relative(process.cwd(), reportPath) || reportPath;
    process.stdout.write(
      `\nReport: ${shown.startsWith("..") ? reportPath : shown} (charts beside it), ${Math.round(results.run.seconds)} s\n`,
    );
    for (const line of summaryLines(results)) process.stdout.write(`  ${line}\n`);
    return 0;
  } catch (error) {
    progress.end();
    if (interrupted) return 130;
    process.stderr.write(
      `shopmesh experiment failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return 1;
  } finally {
    if (!interrupted) await cleanUp("SIGTERM");
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
