import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";

/** A service process started by {@link spawnService}. */
export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly port: number;
  /** Port of the loopback-only admin listener (fault injection). */
  readonly adminPort: number;
  /** Port of the metrics listener (`/metrics`); undefined when METRICS_PORT=off. */
  readonly metricsPort: number | undefined;
  /** Port of the HTTP listener (Connect, gRPC-Web), unless HTTP_PORT=off. */
  readonly httpPort: number | undefined;
  /** `127.0.0.1:port`. */
  readonly address: string;
  /** Every JSON log line the process printed so far. */
  readonly logs: Record<string, unknown>[];
  /**
   * Sends a signal and waits for the exit, and for the last of its output to
   * be read (in `logs`); resolves with the exit code. With
   * `killAfterMs`, a process still running that long after the signal gets
   * SIGKILL.
   */
  stop(signal?: NodeJS.Signals, options?: StopOptions): Promise<number | null>;
}

/** Options for {@link ServiceProcess.stop}. */
export interface StopOptions {
  /** SIGKILL a process that has not exited this long after the first signal. */
  killAfterMs?: number;
}

/** Options for {@link spawnService}. */
export interface SpawnServiceOptions {
  /** Path of the TypeScript entry point, run with tsx. */
  entry: string;
  /** The Node.js executable (default: the one running this). */
  node?: string;
  /** Flags for `node` itself, before the entry point (V8 flags included). */
  nodeArgs?: string[];
  /** Extra environment; PORT defaults to 0 (a free port). */
  env?: Record<string, string>;
  /** How long to wait for the `ready` line. */
  readyTimeoutMs?: number;
  /** Called with every JSON log line. */
  onLog?: (entry: Record<string, unknown>) => void;
  /** Keep every log line in `logs` (default true; a long-running supervisor turns it off). */
  keepLogs?: boolean;
  /** Called with what the process writes to standard error. */
  onStderr?: (text: string) => void;
  /**
   * Abandons a start: on abort before `ready`, the process gets SIGTERM
   * (SIGKILL after `abortGraceMs`, default 5 s) and the start rejects once
   * it has exited.
   */
  signal?: AbortSignal;
  abortGraceMs?: number;
}

/** How long a process's output may stay open after it exited. */
const outputGraceMs = 2_000;

/** Sends `signal`, then SIGKILL after `killAfterMs` (if given) unless the child exited; resolves once it has exited and its output has been read. */
function terminate(
  child: ChildProcess,
  exited: Promise<number | null>,
  signal: NodeJS.Signals,
  killAfterMs: number | undefined,
): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return exited;
  child.kill(signal);
  if (signal !== "SIGKILL" && killAfterMs !== undefined) {
    const timer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
    void exited.finally(() => clearTimeout(timer));
  }
  return exited;
}

/**
 * Starts a service entry point as its own Node.js process and resolves once it
 * has logged `ready`, with the port it listens on. Rejects, with what the
 * process printed, when it exits or stays silent first.
 */
export async function spawnService(options: SpawnServiceOptions): Promise<ServiceProcess> {
  const child = spawn(
    options.node ?? process.execPath,
    [...(options.nodeArgs ?? []), "--import", "tsx", options.entry],
    {
      env: { ...process.env, PORT: "0", LOG_LEVEL: "info", ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const logs: Record<string, unknown>[] = [];
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    if (stderr.length < 64 * 1024) stderr += chunk;
    options.onStderr?.(chunk);
  });
  // Settled once what the process wrote has been read ("close"), not at its "exit", which may come
  // first: its stderr goes into the error of a failed start, its stdout into `logs`. A process of
  // its own that kept the pipes open would hold "close" back, so the wait for it is bounded.
  let outputRead!: () => void;
  const outputEnded = new Promise<void>((resolve) => (outputRead = resolve));
  child.once("close", () => outputRead());
  const exited = once(child, "exit").then(async ([code]) => {
    const grace = setTimeout(outputRead, outputGraceMs);
    await outputEnded;
    clearTimeout(grace);
    return code as number | null;
  });
  let adminPort = 0;
  let metricsPort: number | undefined;
  let httpPort: number | undefined;
  const port = await new Promise<number>((resolve, reject) => {
    let abandoned = false;
    const abort = () => {
      abandoned = true;
      clearTimeout(timer);
      void terminate(child, exited, "SIGTERM", options.abortGraceMs ?? 5000).then(() =>
        reject(new Error(`${options.entry}: start abandoned before it was ready`)),
      );
    };
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${options.entry} did not become ready in time\n${stderr}`));
    }, options.readyTimeoutMs ?? 20_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (options.keepLogs !== false) logs.push(entry);
      options.onLog?.(entry);
      if (entry.msg === "ready" && typeof entry.port === "number" && !abandoned) {
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", abort);
        if (typeof entry.adminPort === "number") adminPort = entry.adminPort;
        if (typeof entry.metricsPort === "number") metricsPort = entry.metricsPort;
        if (typeof entry.httpPort === "number") httpPort = entry.httpPort;
        resolve(entry.port);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", abort);
      // An abandoned start rejects once the exit is seen, with its own reason.
      if (!abandoned) reject(new Error(`${options.entry} exited with ${code} before it was ready\n${stderr}`));
    });
    if (options.signal?.aborted) abort();
    else options.signal?.addEventListener("abort", abort, { once: true });
  });
  return {
    child,
    port,
    adminPort,
    metricsPort,
    httpPort,
    address: `127.0.0.1:${port}`,
    logs,
    stop: (signal = "SIGTERM", stopOptions = {}) => terminate(child, exited, signal, stopOptions.killAfterMs),
  };
}
