import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { chaos } from "./chaos.js";

const usage = `usage: shopmesh <command>

  start       run the services on their well-known ports (same as npm start)
  chaos       inject latency, errors or hangs into a running service
  keys        rotate or list the users service's token signing keys
  experiment  measure what synchronous coupling costs; writes reports/coupling.md
  bench       load each service and the aggregator; writes reports/bench.md
  soak        mixed load with faults on a schedule; writes reports/soak.md
  overload    1,000 STRONG views at once, health polled; writes reports/overload.md
  cluster     a multi-host mesh in network namespaces (up, down, exec, scenarios; root)

Run 'shopmesh <command> --help' for a command's options; 'shopmesh --version' for the version.`;

const [command, ...args] = process.argv.slice(2);
switch (command) {
  case "chaos":
    process.exitCode = await chaos(args);
    break;
  case "keys":
    process.exitCode = await (await import("./keys.js")).keys(args);
    break;
  case "experiment":
    process.exitCode = await (await import("./experiment/experiment-command.js")).experiment(args);
    break;
  case "bench":
    process.exitCode = await (await import("./bench/bench-command.js")).bench(args);
    break;
  case "soak":
  case "overload":
    process.exitCode = await (await import("./robustness/robustness-commands.js")).run(command, args);
    break;
  case "cluster":
    process.exitCode = await (await import("./cluster/cluster-command.js")).cluster(args);
    break;
  case "start": {
    const script = fileURLToPath(new URL("../../../scripts/start-mesh.ts", import.meta.url));
    const child = spawn(process.execPath, ["--import", "tsx", script, ...args], { stdio: "inherit" });
    // Ctrl-C reaches the launcher directly; wait for it to stop its services. A SIGTERM (from npm) is passed on.
    process.on("SIGINT", () => undefined);
    process.on("SIGTERM", () => child.kill("SIGTERM"));
    child.on("exit", (code) => (process.exitCode = code ?? 1));
    break;
  }
  case "--version":
  case "-v": {
    const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    process.stdout.write(`shopmesh ${version}\n`);
    break;
  }
  case undefined:
  case "help":
  case "--help":
  case "-h":
    process.stdout.write(`${usage}\n`);
    break;
  default:
    process.stderr.write(`shopmesh: unknown command '${command}'\nRun 'shopmesh --help' for the commands.\n`);
    process.exitCode = 2;
}
