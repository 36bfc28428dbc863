// The processes `shopmesh overload` measures from: each loads itself, says
// "ready", waits for "go" on standard input, does its part and prints its
// result as one JSON line. Several of them, so that no single client's busy
// event loop is what the figures show.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";

/** A measuring process, loaded and waiting for `go()`. */
export interface MeasuringProcess<T> {
  go(): void;
  /** What it printed, once it has exited. */
  result: Promise<T>;
}

/** Starts `entry` (TypeScript, through tsx) with `args`; resolves once it is ready. It is killed if it runs past `timeoutMs`. */
export async function startMeasuringProcess<T>(
  entry: string,
  args: string[],
  timeoutMs: number,
): Promise<MeasuringProcess<T>> {
  const child = spawn(process.execPath, ["--import", "tsx", entry, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  const killer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (text: string) => {
    if (stderr.length < 16 * 1024) stderr += text;
  });
  const exited = once(child, "exit");
  let ready: () => void = () => undefined;
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  const result = new Promise<T>((resolveResult, reject) => {
    let printed: T | undefined;
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (line === "ready") ready();
      else printed = JSON.parse(line) as T;
    });
    void exited.then(([code]) => {
      clearTimeout(killer);
      ready();
      if (printed !== undefined) resolveResult(printed);
      else reject(new Error(`${entry} exited with ${String(code)} and no result: ${stderr}`));
    });
  });
  // Awaited later; a process failing before that must not count as an unhandled rejection.
  result.catch(() => undefined);
  await isReady;
  return { go: () => child.stdin.end("go\n"), result };
}

/** In a measuring process: says "ready" and resolves when told to go. */
export async function readyAndWaitForGo(): Promise<void> {
  process.stdout.write("ready\n");
  for await (const line of createInterface({ input: process.stdin })) if (line === "go") return;
}
