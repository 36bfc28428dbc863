import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { connect } from "nats";
import { requireProgram, type OptionalProgram } from "./optional-program.js";
import { freePort } from "./free-port.js";

/**
 * Whether nats-server is there, for `describe.skipIf(natsServer().missing)`
 * around the tests that need it. Where it is missing they are skipped with a
 * one-line reason; on CI (or with SHOPMESH_REQUIRE=nats-server) this throws.
 */
export function natsServer(): OptionalProgram {
  return requireProgram("nats-server", {
    debianPackage: "nats-server",
    envVariable: "NATS_SERVER_BIN",
    neededFor: "the JetStream tests",
  });
}

/** A nats-server with JetStream this test started, on loopback. */
export interface SpawnedNatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  /** Ends the process (SIGKILL by default: a crash); keeps the store, so `restart` finds the streams again. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the process again on the same port and store, and waits until it takes connections. */
  restart(): Promise<void>;
  /** Ends the process and removes the store. */
  stop(): Promise<void>;
}

/** The NATS tests talk to: CI's (NATS_URL) or a private one. */
export interface TestNats {
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * NATS for tests that only need one: the server CI started (NATS_URL) when
 * there is one, otherwise a private server. Tests keep apart on a shared
 * server by using {@link uniquePrefix}.
 */
export async function natsForTests(): Promise<TestNats> {
  const shared = process.env.NATS_URL?.trim();
  if (shared) {
    await waitForNats(shared);
    return { url: shared, stop: () => deleteTestStreams(shared) };
  }
  return spawnNatsServer();
}

const prefixes: string[] = [];
/** A stream prefix no other test, test run or mesh uses. */
export function uniquePrefix(label: string): string {
  const prefix =
    `t-${label}-${process.pid}-${prefixes.length + 1}-${Math.random().toString(36).slice(2, 8)}`.toLowerCase();
  prefixes.push(prefix);
  return prefix;
}

/** Removes the streams made under this process's prefixes from a server the tests share with others. */
async function deleteTestStreams(url: string): Promise<void> {
  const nc = await connect({ servers: url, reconnect: false });
  try {
    const jsm = await nc.jetstreamManager();
    const ours = (name: string) => prefixes.some((prefix) => name.startsWith(`${prefix.toUpperCase()}_`));
    for await (const name of jsm.streams.names()) {
      if (ours(name)) await jsm.streams.delete(name);
    }
  } finally {
    await nc.close();
  }
}

/**
 * Starts `nats-server -js` on a free loopback port with a temporary store
 * and resolves once it accepts connections and answers JetStream requests.
 */
export async function spawnNatsServer(): Promise<SpawnedNatsServer> {
  const binary = natsServerBinary();
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), "shopmesh-nats-"));
  const url = `nats://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;

  const start = async () => {
    const started = spawn(binary, ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    started.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      if (stderr.length < 16 * 1024) stderr += chunk;
    });
    child = started;
    const exited = once(started, "exit").then(([code]) => {
      throw new Error(`nats-server exited with ${String(code)} before it was ready\n${stderr}`);
    });
    exited.catch(() => undefined);
    await Promise.race([waitForNats(url), exited]);
  };
  const kill = async (signal: NodeJS.Signals = "SIGKILL") => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = once(running, "exit");
    running.kill(signal);
    await exited;
  };

  try {
    await start();
  } catch (error) {
    await kill();
    rmSync(storeDir, { recursive: true, force: true });
    throw error;
  }
  return {
    url,
    port,
    storeDir,
    kill,
    restart: async () => {
      await kill();
      await start();
    },
    stop: async () => {
      await kill();
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

/**
 * Resolves once a client can connect to `url` and JetStream answers;
 * rejects after `timeoutMs`. Retries a refused connection every 25 ms.
 */
export async function waitForNats(url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const nc = await connect({ servers: url, reconnect: false, timeout: 1000 });
      try {
        await nc.jetstreamManager();
        return;
      } finally {
        await nc.close();
      }
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`NATS at ${url} did not become ready: ${String(error)}`);
      await sleep(25);
    }
  }
}

/** NATS_SERVER_BIN, else nats-server from PATH. */
function natsServerBinary(): string {
  const program = natsServer();
  if (!program.path) throw new Error(program.skipReason);
  return program.path;
}
