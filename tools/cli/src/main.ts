import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { chaos, chaosUsage } from "./chaos.js";

const usage = `usage: shopmesh <command>

  start    run every service on its well-known port (same as npm start)
  chaos    inject latency, errors or hangs into a running service

${chaosUsage}`;

const [command, ...args] = process.argv.slice(2);
switch (command) {
  case "chaos":
    process.exitCode = await chaos(args);
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
