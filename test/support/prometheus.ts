import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { requireProgram, type OptionalProgram } from "./optional-program.js";
import { freePort } from "./free-port.js";

/** Whether prometheus is there, for `describe.skipIf(prometheusProgram().missing)`. */
export function prometheusProgram(): OptionalProgram {
  return requireProgram("prometheus", { debianPackage: "prometheus", neededFor: "the Prometheus scrape tests" });
}

/** Whether promtool (Debian's prometheus package) is there. */
export function promtoolProgram(): OptionalProgram {
  return requireProgram("promtool", { debianPackage: "prometheus", neededFor: "the Prometheus rule checks" });
}

/** One series of an instant vector: its labels and value. */
export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

/** A Prometheus server a test started, scraping only the test's own targets. */
export interface TestPrometheus {
  /** `http://127.0.0.1:port`. */
  readonly url: string;
  /** An instant query (`/api/v1/query`); rejects when Prometheus refuses the expression. */
  query(expr: string): Promise<PromSample[]>;
  /**
   * Repeats `expr` until `accept` takes its answer, and resolves with that
   * answer; rejects after `timeoutMs` with the last one.
   */
  waitFor(expr: string, accept: (samples: PromSample[]) => boolean, timeoutMs?: number): Promise<PromSample[]>;
  /** Ends the process and removes its configuration and storage. */
  stop(): Promise<void>;
}

/** Options for {@link spawnPrometheus}. */
export interface PrometheusOptions {
  /** `/metrics` ports on 127.0.0.1 to scrape, by the `service` label they get. */
  targets: Record<string, number>;
  /** Rule files to load, by absolute path. */
  ruleFiles?: string[];
}

/**
 * Starts prometheus on a free loopback port with a generated configuration
 * (one job, `shopmesh`, scraping and evaluating rules every second) and a
 * throw-away storage directory, and resolves once it reports ready.
 */
export async function spawnPrometheus(options: PrometheusOptions): Promise<TestPrometheus> {
  const program = prometheusProgram();
  if (!program.path) throw new Error(program.skipReason);
  const dir = mkdtempSync(join(tmpdir(), "shopmesh-prometheus-"));
  const config = {
    global: { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" },
    rule_files: options.ruleFiles ?? [],
    scrape_configs: [
      {
        job_name: "shopmesh",
        static_configs: Object.entries(options.targets).map(([service, port]) => ({
          targets: [`127.0.0.1:${port}`],
          labels: { service },
        })),
      },
    ],
  };
  // JSON is YAML: no YAML library needed to write it.
  writeFileSync(join(dir, "prometheus.yml"), JSON.stringify(config, null, 2));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    program.path,
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    if (stderr.length < 32 * 1024) stderr += chunk;
  });
  const exited = once(child, "exit");
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const query = async (expr: string): Promise<PromSample[]> => {
    const response = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
    const body = (await response.json()) as {
      status: string;
      error?: string;
      data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
    };
    if (body.status !== "success" || body.data?.resultType !== "vector")
      throw new Error(`prometheus refused ${expr}: ${body.error ?? JSON.stringify(body)}`);
    return body.data.result.map((series) => ({ metric: series.metric, value: Number(series.value[1]) }));
  };

  try {
    await until(
      async () => (await fetch(`${url}/-/ready`).catch(() => undefined))?.status === 200,
      20_000,
      () => `prometheus did not become ready at ${url}\n${stderr}`,
      exited,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    query,
    async waitFor(expr, accept, timeoutMs = 20_000) {
      let last: PromSample[] = [];
      await until(
        async () => {
          last = await query(expr);
          return accept(last);
        },
        timeoutMs,
        () => `prometheus never gave an acceptable answer to ${expr}; the last was ${JSON.stringify(last)}\n${stderr}`,
        exited,
      );
      return last;
    },
    stop,
  };
}

/** Polls `check` every 100 ms until it holds; rejects after `timeoutMs` or when the process exits. */
async function until(
  check: () => Promise<boolean>,
  timeoutMs: number,
  failure: () => string,
  exited: Promise<unknown>,
): Promise<void> {
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (gone) throw new Error(`prometheus exited: ${failure()}`);
    if (await check()) return;
    if (performance.now() > deadline) throw new Error(failure());
    await sleep(100);
  }
}
