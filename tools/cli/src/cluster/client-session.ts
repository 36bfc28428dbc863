// The harness's handle on the client host: starts client-driver.ts inside
// the client's namespace and calls its operations with typed arguments.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, openSync, closeSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { ClientContext, ClientOperations } from "./client-operations.js";
import { clusterPorts, natsUrls, type Cluster } from "./cluster.js";

type Operation = Exclude<keyof ClientOperations, "close">;
type Args<K extends Operation> = Parameters<ClientOperations[K]>[0];
type Result<K extends Operation> = Awaited<ReturnType<ClientOperations[K]>>;

const driver = fileURLToPath(new URL("./client-driver.ts", import.meta.url));
const repositoryRoot = fileURLToPath(new URL("../../../..", import.meta.url));

export class ClientSession {
  #next = 1;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  #exited = false;

  private constructor(private readonly child: ChildProcess) {}

  /** Starts the client host's process and resolves once it takes requests. */
  static async start(cluster: Cluster): Promise<ClientSession> {
    const dataDir = join(cluster.dir, "hosts", "client");
    mkdirSync(dataDir, { recursive: true });
    const context: ClientContext = {
      caFile: cluster.certificates.caFile,
      dataDir,
      natsUrls,
      ports: clusterPorts,
    };
    const log = openSync(join(cluster.dir, "logs", "client.log"), "a");
    const child = spawn(
      "ip",
      ["netns", "exec", cluster.host("client").namespace, process.execPath, "--import", "tsx", driver],
      {
        cwd: repositoryRoot,
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          ...(process.env.TSX_TSCONFIG_PATH ? { TSX_TSCONFIG_PATH: process.env.TSX_TSCONFIG_PATH } : {}),
          SHOPMESH_CLUSTER_CLIENT: JSON.stringify(context),
        },
        stdio: ["pipe", "pipe", log],
      },
    );
    closeSync(log);
    const session = new ClientSession(child);
    const ready = new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on("line", (line) => {
        let message: { ready?: boolean; id?: number; result?: unknown; error?: string };
        try {
          message = JSON.parse(line) as typeof message;
        } catch {
          return;
        }
        if (message.ready) resolve();
        const pending = message.id === undefined ? undefined : session.#pending.get(message.id);
        if (!pending) return;
        session.#pending.delete(message.id!);
        if (message.error !== undefined) pending.reject(new Error(message.error));
        else pending.resolve(message.result);
      });
      child.once("exit", (code) => {
        session.#exited = true;
        const error = new Error(`the client host's process exited (${String(code)}); see logs/client.log`);
        reject(error);
        for (const pending of session.#pending.values()) pending.reject(error);
        session.#pending.clear();
      });
    });
    await ready;
    return session;
  }

  call<K extends Operation>(op: K, args: Args<K>): Promise<Result<K>> {
    if (this.#exited) return Promise.reject(new Error("the client host's process has exited"));
    const id = this.#next++;
    return new Promise<Result<K>>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.stdin!.write(`${JSON.stringify({ id, op, args: args ?? {} })}\n`);
    });
  }

  /** Ends the client's process (closing its input lets it close its channels first). */
  async close(): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(timer);
  }
}
