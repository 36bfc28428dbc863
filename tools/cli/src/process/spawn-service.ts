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
  /** Sends a signal and waits for the exit; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Options for {@link spawnService}. */
export interface SpawnServiceOptions {
  /** Path of the TypeScript entry point, run with tsx. */
  entry: string;
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
}

/**
 * Starts a service entry point as its own Node.js process and resolves once it
 * has logged `ready`, with the port it listens on. Rejects, with what the
 * process printed, when it exits or stays silent first.
 */
export async function spawnService(options: SpawnServiceOptions): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), "--import", "tsx", options.entry], {
    env: { ...process.env, PORT: "0", LOG_LEVEL: "info", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    if (stderr.length < 64 * 1024) stderr += chunk;
    options.onStderr?.(chunk);
  });
  const exited = once(child, "exit").then(([code]) => code as number | null);
  let adminPort = 0;
  let metricsPort: number | undefined;
  let httpPort: number | undefined;
  const port = await new Promise<number>((resolve, reject) => {
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
      if (entry.msg === "ready" && typeof entry.port === "number") {
        clearTimeout(timer);
        if (typeof entry.adminPort === "number") adminPort = entry.adminPort;
        if (typeof entry.metricsPort === "number") metricsPort = entry.metricsPort;
        if (typeof entry.httpPort === "number") httpPort = entry.httpPort;
        resolve(entry.port);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${options.entry} exited with ${code} before it was ready\n${stderr}`));
    });
  });
  return {
    child,
    port,
    adminPort,
    metricsPort,
    httpPort,
    address: `127.0.0.1:${port}`,
    logs,
    async stop(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exited;
    },
  };
}
