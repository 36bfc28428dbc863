import { readdirSync, readFileSync } from "node:fs";

/**
 * Pids of the processes on this machine whose environment has `name=value`
 * (read from /proc, so Linux only): how a test finds every process of a mesh
 * it started with its own DATA_DIR, including one that never printed its pid.
 */
export function processesWithEnv(name: string, value: string): number[] {
  const wanted = `${name}=${value}`;
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${entry}/environ`, "utf8");
    } catch {
      continue; // gone meanwhile, or another user's
    }
    if (environ.split("\0").includes(wanted)) found.push(pid);
  }
  return found;
}
