import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { readRssBytes } from "../process/proc-stats.js";
import { createClient, createTransport, type ClientTlsOptions, type GrpcTransport } from "@shopmesh/sdk";
import { FaultInjectionService } from "@shopmesh/sdk/faults/v1";
import { LocalMesh, serviceNames, type ServiceName } from "../mesh/local-mesh.js";
import { parsePrometheusText } from "../prometheus-text.js";

/** The admin account of a soak or overload mesh. */
export const loadAdmin = {
  email: "admin@load.shopmesh.local",
  password: "load-admin-password",
  displayName: "Load Admin",
};

const heapPreload = pathToFileURL(fileURLToPath(new URL("./heap-report-preload.mjs", import.meta.url))).href;

/** One fault on one method of a service, as the admin API takes it. */
export interface FaultSpec {
  method: string;
  latencyMs?: number;
  errorRate?: number;
  errorCode?: string;
  hang?: boolean;
}

/** What heap-report-preload.mjs writes. */
interface HeapReport {
  heapUsed?: number;
  heapTotal?: number;
  gcMaxPauseMs?: number;
  gcPausesOver10Ms?: number;
}

/** Memory of one service process at one moment. */
export interface MemorySample {
  rssBytes: number;
  /** V8 heap in use, as the process last reported it (about once a second); undefined before its first report. */
  heapUsedBytes?: number;
  heapTotalBytes?: number;
}

/**
 * A mesh for the load tools (`shopmesh soak`, `shopmesh overload`): the four
 * services on free loopback ports in a temporary data directory, fault
 * injection on where asked, and each process reporting its heap through a
 * preload so that memory can be read per process while it runs.
 */
/** The line a chassis server logs at its stop when it refused calls for overload (see RefusalTimes). */
const serverRefusalsLine = "refused for overload, ms after arrival";

/** That line's figures: bucket bounds in ms, except maxMs. */
export interface ServerRefusals {
  refused: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  within10Ms: number;
  /** Mean time an admitted call held its slot, ms. */
  meanHoldMs: number;
}

/** How long a service took to answer one method's calls with OK, as its rpc_server_duration_seconds histogram says. */
export interface ServerAnswers {
  /** Calls answered OK. */
  answered: number;
  /** The histogram bound the share below is read at, ms: the largest at or under the budget asked about. */
  boundMs: number;
  /** Share of them answered within boundMs of their arrival, 0 to 1. */
  withinBound: number;
  /** The smallest bound every OK answer came within, ms (Infinity past the last). */
  slowestBoundMs: number;
}

export class LoadMesh {
  readonly #transports: GrpcTransport[] = [];
  #stopped = false;

  private constructor(
    readonly dataDir: string,
    readonly mesh: LocalMesh,
    private readonly stderr: Map<ServiceName, string>,
    private readonly refusals: Map<ServiceName, ServerRefusals>,
  ) {}

  static async start(options: {
    tokenTtl: string;
    faultInjection: boolean;
    env?: Partial<Record<ServiceName, Record<string, string>>>;
  }): Promise<LoadMesh> {
    const dataDir = mkdtempSync(join(tmpdir(), "shopmesh-load-"));
    const stderr = new Map<ServiceName, string>();
    const refusals = new Map<ServiceName, ServerRefusals>();
    try {
      const common = {
        LOG_LEVEL: "info",
        ADMIN_PORT: "0",
        SHUTDOWN_GRACE: "2s",
        NODE_OPTIONS: `--import ${heapPreload}`,
      };
      const faults = options.faultInjection ? { FAULT_INJECTION: "on" } : {};
      const mesh = await LocalMesh.start({
        dataDir,
        env: Object.fromEntries(
          serviceNames.map((service) => [
            service,
            {
              ...common,
              ...(service === "user-orders" ? {} : faults),
              ...(service === "users"
                ? { ADMIN_EMAILS: loadAdmin.email, PASSWORD_HASH_COST: "1024", TOKEN_TTL: options.tokenTtl }
                : {}),
              HEAP_REPORT_FILE: join(dataDir, `${service}.heap.json`),
              ...options.env?.[service],
            },
          ]),
        ),
        // Nothing reads the services' logs; keeping every line would grow without bound.
        spawn: (service) => ({
          keepLogs: false,
          onLog: (entry) => {
            if (entry.msg === serverRefusalsLine) refusals.set(service, entry as unknown as ServerRefusals);
          },
          // A busy shared machine can take longer than the usual 20 s to start four processes.
          readyTimeoutMs: 60_000,
          onStderr: (text) => {
            const sofar = stderr.get(service) ?? "";
            if (sofar.length < 16 * 1024) stderr.set(service, sofar + text);
          },
        }),
      });
      return new LoadMesh(dataDir, mesh, stderr, refusals);
    } catch (error) {
      rmSync(dataDir, { recursive: true, force: true });
      throw error;
    }
  }

  address(service: ServiceName): string {
    return this.mesh.address(service);
  }

  /** TLS options for a client of `service` (see LocalMesh.clientTls). */
  clientTls(service: ServiceName | undefined, as?: string): ClientTlsOptions | undefined {
    return this.mesh.clientTls(service, as);
  }

  /** A transport to a service, closed by {@link stop}. */
  transport(service: ServiceName, token?: string): GrpcTransport {
    const transport = createTransport({
      target: this.address(service),
      token,
      tls: this.clientTls(service),
      channelOptions: { "grpc.use_local_subchannel_pool": 1 },
    });
    this.#transports.push(transport);
    return transport;
  }

  /** Replaces the faults of a service with `faults` (none: clears them). */
  async setFaults(service: Exclude<ServiceName, "user-orders">, faults: FaultSpec[]): Promise<void> {
    const transport = createTransport({ target: this.mesh.adminAddress(service) });
    try {
      const admin = createClient(FaultInjectionService, transport);
      await admin.clearFaults({}, { timeoutMs: 3000 });
      for (const fault of faults) {
        await admin.setFault(
          {
            fault: {
              method: fault.method,
              latency: durationFromMs(fault.latencyMs ?? 0),
              errorRate: fault.errorRate ?? 0,
              errorCode: fault.errorCode ?? "",
              hang: fault.hang ?? false,
            },
          },
          { timeoutMs: 3000 },
        );
      }
    } finally {
      transport.close();
    }
  }

  /** Every running service's pid. */
  pids(): Map<ServiceName, number> {
    const pids = new Map<ServiceName, number>();
    for (const [service, running] of this.mesh.processes)
      if (running.child.pid !== undefined) pids.set(service, running.child.pid);
    return pids;
  }

  /** RSS now and the heap as last reported, of every running service. */
  memory(): Map<ServiceName, MemorySample> {
    const samples = new Map<ServiceName, MemorySample>();
    for (const [service, pid] of this.pids()) {
      const rssBytes = readRssBytes(pid);
      if (rssBytes === undefined) continue;
      const heap = this.#heapReport(service);
      samples.set(service, { rssBytes, heapUsedBytes: heap?.heapUsed, heapTotalBytes: heap?.heapTotal });
    }
    return samples;
  }

  /** The longest garbage-collection pause of a service so far, and how many were over 10 ms, as it last reported them. */
  gcPauses(service: ServiceName): { maxMs: number; over10Ms: number } | undefined {
    const heap = this.#heapReport(service);
    if (heap?.gcMaxPauseMs === undefined) return undefined;
    return { maxMs: heap.gcMaxPauseMs, over10Ms: heap.gcPausesOver10Ms ?? 0 };
  }

  /** What a service's heap preload last wrote (see heap-report-preload.mjs); undefined before its first report. */
  #heapReport(service: ServiceName): HeapReport | undefined {
    try {
      return JSON.parse(readFileSync(join(this.dataDir, `${service}.heap.json`), "utf8")) as HeapReport;
    } catch {
      return undefined;
    }
  }

  /** Which services have exited on their own (a crash under load). */
  exited(): ServiceName[] {
    return [...this.mesh.processes]
      .filter(([, running]) => running.child.exitCode !== null || running.child.signalCode !== null)
      .map(([service]) => service);
  }

  /** How soon after arriving each service refused the calls it refused for overload, as it logged at its stop. */
  serverRefusals(): Partial<Record<ServiceName, ServerRefusals>> {
    return Object.fromEntries(this.refusals);
  }

  /**
   * From `service`'s metrics listener: how soon after arriving its OK answers
   * to `method` left, measured in the server, against `budgetMs`; undefined
   * when it runs without one.
   */
  async serverAnswers(service: ServiceName, method: string, budgetMs: number): Promise<ServerAnswers | undefined> {
    const { metricsPort } = this.mesh.processes.get(service) ?? {};
    // Run with METRICS_PORT=off: the load's own figures stand alone.
    if (metricsPort === undefined) return undefined;
    const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics?name=rpc_server_duration_seconds`);
    if (!response.ok) throw new Error(`${service}'s /metrics answered ${response.status}`);
    const buckets = parsePrometheusText(await response.text())
      .filter(
        (sample) =>
          sample.name === "rpc_server_duration_seconds_bucket" &&
          sample.labels.rpc_method === method &&
          sample.labels.rpc_grpc_status_code === "0",
      )
      .map((sample) => ({ boundMs: Number(sample.labels.le) * 1000, count: sample.value }))
      .sort((a, b) => a.boundMs - b.boundMs);
    const answered = buckets.at(-1)?.count ?? 0;
    const atBudget = buckets.filter((bucket) => bucket.boundMs <= budgetMs).at(-1);
    return {
      answered,
      boundMs: atBudget?.boundMs ?? 0,
      withinBound: answered === 0 ? 0 : (atBudget?.count ?? 0) / answered,
      slowestBoundMs: buckets.find((bucket) => bucket.count === answered)?.boundMs ?? 0,
    };
  }

  /** What a process wrote to standard error (the first 16 KiB). */
  stderrOf(service: ServiceName): string {
    return this.stderr.get(service) ?? "";
  }

  /** Stops every service and removes the data directory; safe to call twice. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const transport of this.#transports.splice(0)) transport.close();
    await this.mesh.stop(signal);
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
