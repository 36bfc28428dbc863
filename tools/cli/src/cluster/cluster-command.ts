// `shopmesh cluster up|down|exec|scenarios`: the multi-host mesh for people.
// `up` leaves the cluster running (its processes outlive the command) and
// records it in <dir>/cluster.json; `down` removes everything that file
// names; `exec` runs a command on one of its hosts; `scenarios` runs the
// failure scenarios on a cluster of its own and writes the report.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseCommandLine, usageFailure, UsageError } from "../command-line.js";
import { writeReportFiles } from "../report-files.js";
import { ClientSession } from "./client-session.js";
import { Cluster, clusterHosts, tearDownRecorded, type ClusterRecord } from "./cluster.js";
import { renderMultiHostReport } from "./multi-host-report.js";
import { multiHostProblems, runMultiHost } from "./multi-host-run.js";
import { prepare } from "./scenarios.js";

export const clusterUsage = `usage: shopmesh cluster <up|down|exec|scenarios> [options]

A mesh of hosts on this machine: each process in a Linux network namespace of
its own with its own address, on a bridge of the cluster's own (no route
anywhere else). Needs root and iproute2 (ip), and nats-server.

  up [--dir DIR]                   start it (users, products, orders, two
                                   user-orders replicas, three NATS nodes, a
                                   client host) with the demo data; it keeps
                                   running after the command returns
  down [--dir DIR]                 stop it and remove its namespaces, bridge,
                                   hosts files and DIR's contents
  exec HOST [--dir DIR] -- CMD...  run CMD on HOST (e.g. client), in its
                                   namespace, names resolving as there
  scenarios [--out DIR]            on a cluster of its own: a replica's host
                                   dies, a NATS node dies, a partition, orders
                                   restarted; writes DIR/multi-host.md and
                                   .json (default reports/); exit 1 when a
                                   scenario did not behave
  sweep [--out DIR]                on a cluster of its own: STRONG views with
                                   products' answers delayed, and with products
                                   unavailable part of the time, on the network
                                   path (a TCP proxy) and in products itself;
                                   writes DIR/multi-host-sweep.md

DIR defaults to data/cluster. Hosts: ${clusterHosts.join(", ")}.`;

const say = (line: string) => void process.stdout.write(`${line}\n`);

export async function cluster(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    say(clusterUsage);
    return 0;
  }
  const unusable = missingPrerequisite();
  if (unusable && ["up", "down", "exec", "scenarios", "sweep"].includes(sub)) {
    process.stderr.write(`shopmesh cluster: ${unusable}\n`);
    return 1;
  }
  try {
    switch (sub) {
      case "up":
        return await up(rest);
      case "down":
        return await down(rest);
      case "exec":
        return await exec(rest);
      case "scenarios":
        return await scenarios(rest);
      case "sweep":
        return await sweep(rest);
      default:
        throw new UsageError(`unknown subcommand '${sub}'`);
    }
  } catch (error) {
    return usageFailure("cluster", error);
  }
}

/** Why this machine cannot run a cluster, if it cannot. */
export function missingPrerequisite(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root: it creates network namespaces, a bridge and veth pairs";
  if (spawnSync("ip", ["-V"]).error) return "needs the ip command (Debian: apt-get install iproute2)";
  const nats = process.env.NATS_SERVER_BIN ?? "nats-server";
  if (spawnSync(nats, ["--version"]).error)
    return `needs ${nats} on PATH or in NATS_SERVER_BIN (Debian: apt-get install nats-server, which puts it in /usr/sbin)`;
  return undefined;
}

function dirOption(args: string[]) {
  const { values, positionals } = parseCommandLine({
    args,
    options: { dir: { type: "string", default: "data/cluster" }, help: { type: "boolean" } },
    allowPositionals: true,
  });
  return { dir: resolve(values.dir), positionals, help: values.help === true };
}

async function up(args: string[]): Promise<number> {
  const { dir, help } = dirOption(args);
  if (help) {
    say(clusterUsage);
    return 0;
  }
  if (existsSync(join(dir, "cluster.json"))) {
    process.stderr.write(`shopmesh cluster up: a cluster is recorded in ${dir}; run 'shopmesh cluster down' first\n`);
    return 1;
  }
  let creating: Promise<Cluster> | undefined;
  let running: Cluster | undefined;
  const interrupted = () => {
    void (async () => {
      await (await creating?.catch(() => undefined))?.down();
      process.exit(130);
    })();
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  try {
    creating = Cluster.create({ dir, detached: true, progress: (line) => say(`shopmesh cluster: ${line}`) });
    running = await creating;
    await running.start();
    const client = await ClientSession.start(running);
    try {
      await prepare(client);
    } finally {
      await client.close();
    }
  } catch (error) {
    await running?.down();
    process.stderr.write(`shopmesh cluster up: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    process.removeListener("SIGINT", interrupted);
    process.removeListener("SIGTERM", interrupted);
  }
  say(
    `shopmesh cluster: up (${running.id}, ${running.network.subnet}), with the demo data; logs in ${join(dir, "logs")}`,
  );
  for (const host of running.network.hosts)
    say(`  ${host.name.padEnd(14)} ${host.address.padEnd(14)} ${host.namespace}`);
  say("  run a command on a host with 'shopmesh cluster exec HOST -- CMD'; stop it with 'shopmesh cluster down'");
  return 0;
}

async function down(args: string[]): Promise<number> {
  const { dir } = dirOption(args);
  const recordFile = join(dir, "cluster.json");
  if (!existsSync(recordFile)) {
    say(`shopmesh cluster: no cluster recorded in ${dir}`);
    return 0;
  }
  const { record, failures } = await tearDownRecorded(recordFile);
  for (const part of ["hosts", "logs", "tls", "auth", "cluster.json"])
    rmSync(join(dir, part), { recursive: true, force: true });
  for (const failure of failures) process.stderr.write(`shopmesh cluster down: ${failure}\n`);
  say(`shopmesh cluster: ${record.id} down (${record.network.hosts.length} hosts removed)`);
  return failures.length === 0 ? 0 : 1;
}

async function exec(args: string[]): Promise<number> {
  const separator = args.indexOf("--");
  if (separator === -1) throw new UsageError("exec: give the command after --");
  const { dir, positionals } = dirOption(args.slice(0, separator));
  const command = args.slice(separator + 1);
  const [hostName] = positionals;
  if (positionals.length !== 1 || command.length === 0) throw new UsageError("exec: name one HOST, then -- CMD");
  const recordFile = join(dir, "cluster.json");
  if (!existsSync(recordFile))
    throw new UsageError(`exec: no cluster recorded in ${dir}; start one with 'shopmesh cluster up'`);
  const record = JSON.parse(readFileSync(recordFile, "utf8")) as ClusterRecord;
  const host = record.network.hosts.find((h) => h.name === hostName);
  if (!host)
    throw new UsageError(`exec: no host '${hostName}' (hosts: ${record.network.hosts.map((h) => h.name).join(", ")})`);
  const child = spawn("ip", ["netns", "exec", host.namespace, ...command], { stdio: "inherit" });
  return await new Promise<number>((done) => child.once("exit", (code, signal) => done(code ?? (signal ? 128 : 1))));
}

async function scenarios(args: string[]): Promise<number> {
  const { values } = parseCommandLine({ args, options: { out: { type: "string", default: "reports" } } });
  const report = await runMultiHost({
    command: `shopmesh cluster scenarios${args.length > 0 ? ` ${args.join(" ")}` : ""}`,
    progress: (line) => say(`shopmesh cluster: ${line}`),
  });
  const paths = writeReportFiles(values.out, "multi-host", report, renderMultiHostReport(report));
  const problems = multiHostProblems(report);
  for (const problem of problems) process.stderr.write(`shopmesh cluster scenarios: ${problem}\n`);
  say(
    `shopmesh cluster: ${problems.length === 0 ? "every scenario as the rules say" : `${problems.length} problem(s)`}; ${paths.markdown}`,
  );
  return problems.length === 0 ? 0 : 1;
}

async function sweep(args: string[]): Promise<number> {
  const { values } = parseCommandLine({ args, options: { out: { type: "string", default: "reports" } } });
  const { renderSweepReport, runLatencySweep } = await import("./latency-sweep.js");
  const report = await runLatencySweep({
    command: `shopmesh cluster sweep${args.length > 0 ? ` ${args.join(" ")}` : ""}`,
    delaysMs: [0, 25, 50, 100, 200],
    viewsPerPoint: 30,
    outageShares: [0.1, 0.25, 0.5],
    outageViews: 60,
    progress: (line) => say(`shopmesh cluster: ${line}`),
  });
  const paths = writeReportFiles(values.out, "multi-host-sweep", report, renderSweepReport(report));
  say(`shopmesh cluster: ${paths.markdown}`);
  return 0;
}
