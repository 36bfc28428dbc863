// Preloaded into a bench process with NODE_OPTIONS="--import <this file>"
// when `shopmesh bench --cpu-prof <name>` asks for a CPU profile: Node 20
// refuses --cpu-prof in NODE_OPTIONS, so this starts V8's sampling profiler
// through node:inspector and writes a .cpuprofile (Chrome DevTools format)
// into CPU_PROFILE_DIR when the process exits normally (SIGTERM drains, then
// exits). Plain JavaScript: it loads before tsx does.
import { mkdirSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

const dir = process.env.CPU_PROFILE_DIR ?? "profiles";
const session = new Session();
session.connect();
session.post("Profiler.enable");
session.post("Profiler.setSamplingInterval", { interval: Number(process.env.CPU_PROFILE_INTERVAL_US ?? "1000") });
session.post("Profiler.start");
process.on("exit", () => {
  // The in-process inspector answers synchronously, so this completes before exit.
  session.post("Profiler.stop", (error, result) => {
    if (error) return;
    mkdirSync(dir, { recursive: true });
    const name = `${process.env.CPU_PROFILE_NAME ?? "process"}-${process.pid}.cpuprofile`;
    writeFileSync(join(dir, name), JSON.stringify(result.profile));
  });
});
