import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { chaos, chaosUsage } from "./chaos.js";

const usage = `usage: shopmesh <command>

  start       run every service on its well-known port (same as npm start)
  chaos       inject latency, errors or hangs into a running service
  experiment  measure what synchronous coupling costs; writes reports/coupling.md
  bench       load each service and the aggregator; writes reports/bench.md

${chaosUsage}`;

const [command, ...args] = process.argv.slice(2);
switch (command) {
  case "chaos":
    process.exitCode = await chaos(args);
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
  case "start": {
    const script = fileURLToPath(new URL("../../../scripts/start-mesh.ts", import.meta.url));
    const child = spawn(process.execPath, ["--import", "tsx", script, ...args], { stdio: "inherit" });
    // Ctrl-C reaches the launcher directly; wait for it to stop its services.
    process.on("SIGINT", () => undefined);
    child.on("exit", (code) => (process.exitCode = code ?? 1));
    break;
  }
  default:
    process.stderr.write(`${usage}\n`);
    process.exitCode = command === undefined || command === "help" || command === "--help" ? 0 : 2;
}
