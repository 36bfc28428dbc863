// Processes on a cluster's hosts: each runs inside its host's network
// namespace (`ip netns exec`, which execs the program, so the pid is the
// program's own), in a process group of its own, with what it prints going
// to a log file. It is ready when a line of that file says so.
import { spawn } from "node:child_process";
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { NetworkHost } from "./network.js";

/** A process started by {@link launchOnHost}. */
export interface HostProcess {
  /** e.g. "orders" or "nats-2". */
  readonly name: string;
  readonly host: NetworkHost;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code (null after a signal) once the process has ended. */
  readonly exited: Promise<number | null>;
  /** Sends `signal` to the process and waits for its end. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Options for {@link launchOnHost}. */
export interface LaunchOptions {
  name: string;
  host: NetworkHost;
  /** Program and arguments, run inside the host's namespace. */
  command: readonly string[];
  env: Record<string, string>;
  /** Working directory (tsx is resolved from it). */
  cwd: string;
  /** Where stdout and stderr go (appended). */
  logFile: string;
  /** Whether a line of the log says the process is ready. */
  ready: (line: string) => boolean;
  readyTimeoutMs?: number;
  /** Leave the process running when this process exits (`shopmesh cluster up`). */
  detached?: boolean;
}

/**
 * Starts a process on a host and resolves once its log has a ready line;
 * rejects, with the end of its log, when it exits or stays silent first (and
 * kills it in that case).
 */
export async function launchOnHost(options: LaunchOptions): Promise<HostProcess> {
  const log = openSync(options.logFile, "a");
  const startOffset = statSync(options.logFile).size;
  const child = spawn("ip", ["netns", "exec", options.host.namespace, ...options.command], {
    env: options.env,
    cwd: options.cwd,
    stdio: ["ignore", log, log],
    detached: true,
  });
  closeSync(log);
  if (options.detached) child.unref();
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${options.name}: could not start ${options.command[0]}`);
  let ended = false;
  void exited.then(() => (ended = true));
  const launched: HostProcess = {
    name: options.name,
    host: options.host,
    pid,
    logFile: options.logFile,
    exited,
    async kill(signal = "SIGKILL") {
      if (ended) return;
      try {
        child.kill(signal);
      } catch {
        return;
      }
      await exited;
    },
  };
  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000);
  const reader = new LogReader(options.logFile, startOffset);
  for (;;) {
    if (reader.lines().some(options.ready)) return launched;
    if (ended) throw new Error(`${options.name} on ${options.host.name} exited before it was ready:\n${reader.tail()}`);
    if (Date.now() > deadline) {
      await launched.kill();
      throw new Error(`${options.name} on ${options.host.name} was not ready in time:\n${reader.tail()}`);
    }
    // The process writes to a file, not a pipe (it may outlive this one), so its log is read again.
    await sleep(100);
  }
}

/** Reads the lines a log file gained since an offset, a complete line at a time. */
class LogReader {
  #offset: number;
  #partial = "";
  #seen: string[] = [];
  constructor(
    private readonly file: string,
    offset: number,
  ) {
    this.#offset = offset;
  }

  lines(): string[] {
    const fd = openSync(this.file, "r");
    try {
      const fresh: string[] = [];
      const buffer = Buffer.alloc(64 * 1024);
      for (;;) {
        const read = readSync(fd, buffer, 0, buffer.length, this.#offset);
        if (read === 0) break;
        this.#offset += read;
        const text = this.#partial + buffer.subarray(0, read).toString("utf8");
        const parts = text.split("\n");
        this.#partial = parts.pop() ?? "";
        fresh.push(...parts);
      }
      this.#seen.push(...fresh);
      if (this.#seen.length > 200) this.#seen = this.#seen.slice(-200);
      return fresh;
    } finally {
      closeSync(fd);
    }
  }

  tail(): string {
    this.lines();
    return [...this.#seen.slice(-20), this.#partial].join("\n");
  }
}
