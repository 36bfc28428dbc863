// `npm run docs:check`: runs the README's shell commands as printed, in
// order, against a mesh that `npm start` starts on free ports with a fresh
// data folder, and fails on a non-zero exit, an empty `export X=$(...)`, or a
// block whose output lacks what its `expect` marker names. Placeholders
// (<alice id>, <product id>) and the well-known ports are replaced by what
// this `npm start` printed and listens on. What it does not run, it lists
// with the reason. Markers: scripts/readme/readme-commands.ts.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { defaultHttpPort } from "@shopmesh/chassis";
import { findProgram } from "../../test/support/optional-program.js";
import { debianPython, importsGrpcio, pythonGrpcioName } from "../../test/support/python-grpcio.js";
import { markerValues, readmeBlocks, type ReadmeBlock } from "./readme-commands.js";

const repoRoot = resolve(fileURLToPath(new URL("../..", import.meta.url)));

/** The ports the README names: users, products, orders, user-orders. */
const readmePorts = [50051, 50052, 50053, 50054];
/** Their metrics listeners', which npm start puts 2000 above each service. */
const metricsOffset = 2000;
/** Their HTTP listeners' (Connect, gRPC-Web), 1000 above each. */
const readmeHttpPorts = readmePorts.map(defaultHttpPort);

export type Outcome =
  | { command: string; status: "ran"; ms: number }
  | { command: string; status: "skipped"; reason: string }
  | { command: string; status: "failed"; reason: string; output: string };

export interface CheckResult {
  outcomes: Outcome[];
  /** Block expectations and inline `npm run` scripts that failed. */
  problems: string[];
}

/** Commands never run here, and why. Matched against the command's text. */
const notRun: [RegExp, string][] = [
  [
    /^npm install\b/,
    "the check runs in an installed checkout (CI's .ci/run installs first); reinstalling would rewrite node_modules under the running tests",
  ],
  [/^npm test\b/, "npm test runs this check (test/docs/readme-commands.test.ts)"],
  [/^(sudo )?apt-get install\b/, "installs system packages; CI's .ci/run installs what the tests need"],
  [
    /^npm run generate\b/,
    "rewrites gen/ in place under the running tests; test/contracts/generated-code.test.ts regenerates into a copy and compares",
  ],
];

/** Why a command is never run here, if it is not. */
export function commandSkipReason(command: string): string | undefined {
  return notRun.find(([pattern]) => pattern.test(command))?.[1];
}

/** Sections whose blocks are not run, and why. */
const sectionsNotRun: Record<string, string> = {
  "On Node.js 24":
    "installs another Node.js and rebuilds the checkout's better-sqlite3 for it, under the running tests; .ci/run does the same in its Node.js 24 pass",
  "Use the SDK from another TypeScript project":
    "sets up another project (../my-app) outside this checkout around the packed SDK; sdk/test/sdk-package.test.ts follows that recipe",
};

interface Mesh {
  base: number;
  aliceId: string;
  productId: string;
  /** The mesh's DATA_DIR: the README's data/tls/ca.pem is its tls/ca.pem. */
  dataDir?: string;
  stop(): Promise<void>;
}

interface Options {
  readme?: string;
  log?: (line: string) => void;
  /** Per-command limit. */
  commandTimeoutMs?: number;
}

export async function checkReadmeCommands(options: Options = {}): Promise<CheckResult> {
  const log = options.log ?? (() => undefined);
  const markdown = options.readme ?? readFileSync(join(repoRoot, "README.md"), "utf8");
  const blocks = readmeBlocks(markdown);
  const outcomes: Outcome[] = [];
  const problems = inlineScriptProblems(markdown);
  const work = mkdtempSync(join(tmpdir(), "shopmesh-docs-check-"));
  workDirs.add(work);
  const stateFile = join(work, "shell-state.sh");
  writeFileSync(stateFile, "");
  let mesh: Mesh | undefined;
  const record = (outcome: Outcome) => {
    outcomes.push(outcome);
    const first = outcome.command.split("\n")[0]!.replace(/\s+#.*$/, "");
    if (outcome.status === "ran") log(`ran      ${first}  (${(outcome.ms / 1000).toFixed(1)} s)`);
    else if (outcome.status === "skipped") log(`skipped  ${first}: ${outcome.reason}`);
    else log(`FAILED   ${first}: ${outcome.reason}\n${indent(outcome.output)}`);
  };

  try {
    for (const block of blocks) {
      const skipBlock = blockSkipReason(block);
      let output = "";
      for (const [index, command] of block.commands.entries()) {
        if (skipBlock) {
          record({ command, status: "skipped", reason: skipBlock });
          continue;
        }
        const reason = commandSkipReason(command);
        if (reason) {
          record({ command, status: "skipped", reason });
          continue;
        }
        if (/^npm start\b/.test(command)) {
          const started = Date.now();
          mesh = await startMesh(work, log);
          record({ command, status: "ran", ms: Date.now() - started });
          continue;
        }
        const stream = index === block.commands.length - 1 && isStream(block);
        const outcome = await runCommand(command, {
          mesh,
          stateFile,
          stream,
          timeoutMs: options.commandTimeoutMs ?? 60_000,
        });
        output += outcome.output;
        record(
          outcome.status === "ran"
            ? { command, status: "ran", ms: outcome.ms }
            : { command, status: "failed", reason: outcome.reason, output: outcome.output },
        );
      }
      for (const expected of skipBlock ? [] : markerValues(block.markers, "expect")) {
        if (!output.includes(expected))
          problems.push(`README.md:${block.line}: the block's output does not contain ${expected}`);
      }
    }
  } finally {
    await mesh?.stop();
    rmSync(work, { recursive: true, force: true });
  }
  for (const command of inlineCommands(markdown)) {
    const why = /experiment|bench/.test(command)
      ? "takes minutes (experiment, bench); only its npm script is checked to exist"
      : "quoted in the prose, not in a shell block; npm scripts named there are checked to exist";
    log(`skipped  ${command}: ${why}`);
  }
  for (const problem of problems) log(`PROBLEM  ${problem}`);
  return { outcomes, problems };
}

/** Why a whole block is not run here, if it is not. */
export function blockSkipReason(block: ReadmeBlock): string | undefined {
  const section = sectionsNotRun[block.heading];
  if (section) return section;
  for (const program of markerValues(block.markers, "needs")) {
    if (program === "root") {
      if (process.getuid?.() !== 0) return "needs root (network namespaces, a bridge); CI runs as root";
      continue;
    }
    if (program === pythonGrpcioName) {
      // The README's command runs Debian's interpreter, which apt's packages are for.
      if (!importsGrpcio(debianPython))
        return `${debianPython} does not import grpc and google.protobuf (apt-get install python3-grpcio python3-protobuf)`;
      continue;
    }
    if (!findProgram(program))
      return `${program} is not installed (not a Debian package here); the buf curl line above each runs instead`;
  }
  return undefined;
}

function isStream(block: ReadmeBlock): boolean {
  return markerValues(block.markers, "stream").length > 0;
}

/** Commands quoted in the prose (`npm run …`, `npx shopmesh …`), outside the shell blocks. */
export function inlineCommands(markdown: string): string[] {
  const prose = markdown.replace(/^```[\s\S]*?^```$/gm, "");
  return [...new Set([...prose.matchAll(/`((?:npm run|npx shopmesh) [^`]+)`/g)].map((match) => match[1]!))];
}

/** Every `npm run NAME` the prose names must be a script of package.json. */
export function inlineScriptProblems(markdown: string): string[] {
  const scripts = (
    JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { scripts: Record<string, string> }
  ).scripts;
  const named = new Set([...markdown.matchAll(/npm run ([a-z][\w:-]*)/g)].map((match) => match[1]!));
  return [...named]
    .filter((name) => !(name in scripts))
    .map((name) => `README.md names "npm run ${name}", which package.json does not define`);
}

/** The command with the README's placeholders, ports and data folder made this mesh's. */
export function substitute(
  command: string,
  mesh: Pick<Mesh, "base" | "aliceId" | "productId" | "dataDir"> | undefined,
): string {
  const unknown = /<[a-z][a-z ]*[a-z]>/.exec(command.replaceAll("<alice id>", "").replaceAll("<product id>", ""));
  if (unknown) throw new Error(`unknown placeholder ${unknown[0]}`);
  if (!/<alice id>|<product id>|127\.0\.0\.1:\d+|\bdata\/tls\//.test(command)) return command;
  if (!mesh) throw new Error("the command needs the mesh, but no npm start came before it");
  const dataDir = mesh.dataDir;
  return command
    .replace(/(?<![\w/.-])data\/tls\//g, (path) => (dataDir === undefined ? path : `${dataDir}/tls/`))
    .replaceAll("<alice id>", mesh.aliceId)
    .replaceAll("<product id>", mesh.productId)
    .replace(/127\.0\.0\.1:(\d+)/g, (address, port: string) => {
      const offset = readmePorts.indexOf(Number(port));
      if (offset >= 0) return `127.0.0.1:${mesh.base + offset}`;
      const httpOffset = readmeHttpPorts.indexOf(Number(port));
      if (httpOffset >= 0) return `127.0.0.1:${defaultHttpPort(mesh.base + httpOffset)}`;
      const metrics = readmePorts.indexOf(Number(port) - metricsOffset);
      if (metrics >= 0) return `127.0.0.1:${mesh.base + metrics + metricsOffset}`;
      throw new Error(
        `${address} is none of the README's service ports (${readmePorts.join(", ")}; HTTP ${readmeHttpPorts.join(", ")}; metrics ${readmePorts.map((p) => p + metricsOffset).join(", ")})`,
      );
    });
}

type RunOutcome = { status: "ran"; ms: number; output: string } | { status: "failed"; reason: string; output: string };

/**
 * Runs one command in bash from the checkout, after the variables and
 * functions earlier commands left (kept in `stateFile`), and saves them
 * again after it.
 */
async function runCommand(
  command: string,
  context: { mesh: Mesh | undefined; stateFile: string; stream: boolean; timeoutMs: number },
): Promise<RunOutcome> {
  let text: string;
  try {
    text = substitute(command, context.mesh);
  } catch (error) {
    return { status: "failed", reason: error instanceof Error ? error.message : String(error), output: "" };
  }
  const assigned = /^export ([A-Za-z_]\w*)=/.exec(text)?.[1];
  const q = (path: string) => `'${path.replaceAll("'", "'\\''")}'`;
  const script = [
    "set -o pipefail",
    `source ${q(context.stateFile)}`,
    text,
    "status=$?",
    `{ export -p; declare -f; } > ${q(context.stateFile)}.next && mv ${q(context.stateFile)}.next ${q(context.stateFile)}`,
    assigned
      ? `[ "$status" -eq 0 ] && { [ -n "\${${assigned}}" ] && [ "\${${assigned}}" != undefined ] || { echo "${assigned} is empty" >&2; status=1; }; }`
      : "",
    "exit $status",
  ].join("\n");
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...(context.mesh ? { SHOPMESH_PORT_BASE: String(context.mesh.base) } : {}),
    // As after npm start in that folder: `shopmesh keys` finds the mesh's CA certificate under it.
    ...(context.mesh?.dataDir === undefined ? {} : { DATA_DIR: context.mesh.dataDir }),
    // What a command makes with mktemp goes in the check's own folder, removed with it.
    TMPDIR: dirname(context.stateFile),
  };
  const started = Date.now();
  const child = spawn("bash", ["-c", script], {
    cwd: repoRoot,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  track(child);
  let output = "";
  // A stream passes once it has printed something and kept running 2 s more.
  let markStreaming: (() => void) | undefined;
  const streaming = new Promise<"streaming">((done) => (markStreaming = () => done("streaming")));
  let streamTimer: NodeJS.Timeout | undefined;
  const printed = (chunk: string) => {
    output += chunk;
    if (context.stream && !streamTimer && output.trim() !== "") streamTimer = setTimeout(() => markStreaming?.(), 2000);
  };
  child.stdout!.setEncoding("utf8").on("data", printed);
  child.stderr!.setEncoding("utf8").on("data", printed);
  const exited = once(child, "close").then(([code]) => code as number | null);
  let limit: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((done) => (limit = setTimeout(() => done("timeout"), context.timeoutMs)));
  const first = await Promise.race([exited, timeout, ...(context.stream ? [streaming] : [])]);
  clearTimeout(limit);
  clearTimeout(streamTimer);
  if (first === "streaming" || first === "timeout") {
    killGroup(child, "SIGINT");
    const killer = setTimeout(() => killGroup(child, "SIGKILL"), 5000);
    await exited;
    clearTimeout(killer);
    if (first === "streaming") return { status: "ran", ms: Date.now() - started, output };
    return {
      status: "failed",
      reason: `still running after ${context.timeoutMs / 1000} s${context.stream ? " and printed nothing" : ""}`,
      output,
    };
  }
  if (first !== 0) return { status: "failed", reason: `exit ${String(first)}`, output };
  return { status: "ran", ms: Date.now() - started, output };
}

/**
 * The process groups this check started (npm start, each command), until they
 * exit: if the check itself is stopped (Ctrl-C, a `timeout` around it), it
 * takes them down with it rather than leave a mesh running.
 */
const liveGroups = new Set<number>();
/** The check's temporary folders, removed on the way out too. */
const workDirs = new Set<string>();

function track(child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined) return;
  liveGroups.add(pid);
  child.once("close", () => liveGroups.delete(pid));
}

process.once("exit", () => {
  for (const pid of liveGroups) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const dir of workDirs) rmSync(dir, { recursive: true, force: true });
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid) process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/**
 * `npm start` as printed, with SHOPMESH_PORT_BASE on a free range and
 * DATA_DIR in `work`; resolves once it printed its examples and the ids the
 * README's placeholders stand for. A base that turns out busy, or a service
 * too slow to start on a loaded machine, is tried again (three times at most).
 */
async function startMesh(work: string, log: (line: string) => void): Promise<Mesh> {
  for (let attempt = 1; ; attempt++) {
    const base = 30000 + Math.floor(Math.random() * 9000);
    const dataDir = join(work, `data-${attempt}`);
    const child = spawn("npm", ["start"], {
      cwd: repoRoot,
      env: { ...process.env, SHOPMESH_PORT_BASE: String(base), DATA_DIR: dataDir },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    track(child);
    const lines: string[] = [];
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const exited = once(child, "close").then(([code]) => code as number | null);
    const stop = async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      killGroup(child, "SIGINT");
      const killer = setTimeout(() => killGroup(child, "SIGKILL"), 15_000);
      await exited;
      clearTimeout(killer);
    };
    const ready = new Promise<string>((done) => {
      createInterface({ input: child.stdout! }).on("line", (line) => {
        lines.push(line);
        if (line.startsWith("For the README's commands:")) done(line);
      });
    });
    const timeout = new Promise<"timeout">((done) => setTimeout(() => done("timeout"), 180_000).unref());
    const first = await Promise.race([ready, exited, timeout]);
    if (typeof first === "string" && first !== "timeout") {
      const ids = /<alice id> is (\S+), <product id> is (\S+)/.exec(first);
      if (!ids) {
        await stop();
        throw new Error(`npm start printed an ids line the check cannot read: ${first}`);
      }
      log(`npm start: ports from ${base}, data in ${dataDir}`);
      return { base, aliceId: ids[1]!, productId: ids[2]!, dataDir, stop };
    }
    await stop();
    const printed = `${lines.join("\n")}\n${stderr}`;
    // Busy ports are another program's; a slow start, a machine under load.
    const retry = first !== "timeout" && /busy|did not become ready in time/.test(printed) && attempt < 3;
    if (retry) {
      log(
        `npm start failed (${/busy/.test(printed) ? "a port was busy" : "a service was slow to start"}); trying again on other ports`,
      );
      continue;
    }
    throw new Error(
      `npm start did not print the README ids (${first === "timeout" ? "timed out" : `exit ${String(first)}`}):\n${printed}`,
    );
  }
}

function indent(text: string): string {
  const lines = text.trimEnd().split("\n");
  const shown =
    lines.length > 40 ? [...lines.slice(0, 20), `... ${lines.length - 40} lines ...`, ...lines.slice(-20)] : lines;
  return shown.map((line) => `         | ${line}`).join("\n");
}

async function main(): Promise<void> {
  const started = Date.now();
  const { outcomes, problems } = await checkReadmeCommands({ log: (line) => console.log(line) });
  const count = (status: Outcome["status"]) => outcomes.filter((outcome) => outcome.status === status).length;
  const failed = count("failed") + problems.length;
  console.log(
    `docs:check: ${count("ran")} commands ran, ${count("skipped")} skipped, ${failed} failed (${((Date.now() - started) / 1000).toFixed(0)} s)`,
  );
  process.exit(failed > 0 ? 1 : 0);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  // Stopped from outside: exit, so that the exit hook above stops what the check started.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(signal, () => process.exit(130));
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exit(1);
  });
}
