// `shopmesh overload`: far more STRONG views at once than the mesh can
// serve, while every service's health is checked every 100 ms. Records each
// call's status and latency and each health answer; writes overload.md and
// overload.json. It measures; it does not judge, except that INTERNAL must
// not occur.
import { numberOption, UsageError } from "../command-line.js";
import { thisMachine } from "../report-files.js";
import { relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createClient, type GrpcTransport } from "@shopmesh/sdk";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { serviceNames } from "../mesh/local-mesh.js";
import type { HealthSeen } from "./health-poller.js";
import { startMeasuringProcess } from "./measuring-process.js";
import type { AfterRefusal, ViewLoadResult, ViewLoadSettings } from "./view-load-worker.js";
import { LoadMesh, loadAdmin } from "./load-mesh.js";
import { quantile, tally } from "./load-statistics.js";
import { renderOverloadMarkdown, writeOverloadReport, type OverloadReport } from "./overload-report.js";

const say = (line: string): void => void process.stdout.write(`${line}\n`);

export const overloadUsage = `usage: shopmesh overload [options]

Starts its own mesh on free loopback ports and keeps --concurrency STRONG
GetUserOrders views in flight for --seconds, while checking grpc.health.v1
on every service every 100 ms. Reports answered calls against the budget,
refused ones (RESOURCE_EXHAUSTED) and how fast they were refused, every
other status, and the health answers. Exits 1 if any call got INTERNAL or a
service exited.

  --seconds 20          how long the load runs
  --concurrency 1000    views kept in flight
  --clients 2           processes the views come from (each with 2 connections)
  --after-refusal pushback|at-once|<ms>
                        what a refused caller does before its next call:
                        wait as long as the refusal's grpc-retry-pushback-ms
                        says (default), send it at once (a retry storm: the
                        1,000 calls stay in flight), or wait that many ms,
                        jittered ±50 %
  --deadline <ms>       each view's deadline (default: none, so user-orders'
                        default budget of 1 s applies)
  --set NAME=VALUE      an environment setting for every service (repeatable),
                        e.g. --set MAX_CALLS_IN_FLIGHT=64; SERVICE:NAME=VALUE
                        for one service, e.g. user-orders:MAX_CALLS_IN_FLIGHT=8
  --out <dir>           where overload.md and overload.json go (default reports/
                        for a full run of 20 s and 1000 views, data/overload/ otherwise)`;

/** user-orders' DEFAULT_BUDGET: the budget of a view sent without a deadline. */
const defaultBudgetMs = 1_000;
const healthIntervalMs = 100;
/** How long after the load's end a call still waiting is given up. */
const abandonAfterMs = 30_000;
const pollerEntry = fileURLToPath(new URL("./health-poller.ts", import.meta.url));
const workerEntry = fileURLToPath(new URL("./view-load-worker.ts", import.meta.url));
const root = fileURLToPath(new URL("../../../..", import.meta.url));

interface OverloadSettings {
  durationMs: number;
  concurrency: number;
  /** Processes the load comes from. */
  clients: number;
  deadlineMs: number | undefined;
  /** What a refused caller does before its next call. */
  afterRefusal: AfterRefusal;
  env: Record<string, string>;
  outDir: string;
}

function readSettings(args: string[]): OverloadSettings | "help" {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: "string" },
      concurrency: { type: "string" },
      clients: { type: "string" },
      deadline: { type: "string" },
      "after-refusal": { type: "string" },
      set: { type: "string", multiple: true },
      out: { type: "string" },
      help: { type: "boolean", default: false },
    },
    allowPositionals: false,
  });
  if (values.help) return "help";
  const number = (
    flag: string,
    text: string | undefined,
    fallback: number | undefined,
    min: number,
    max: number,
    whole = false,
  ) => (text === undefined ? fallback : numberOption(flag, text, min, max, whole));
  const env: Record<string, string> = {};
  for (const entry of values.set ?? []) {
    const match = /^((?:[a-z][a-z-]*:)?[A-Z][A-Z0-9_]*)=(.*)$/.exec(entry);
    if (!match)
      throw new Error(`--set: expected NAME=VALUE or SERVICE:NAME=VALUE with an upper-case name, got ${entry}`);
    const service = match[1]!.split(":")[0]!;
    if (match[1]!.includes(":") && !(serviceNames as readonly string[]).includes(service))
      throw new Error(`--set: no service named ${service}`);
    env[match[1]!] = match[2]!;
  }
  const durationMs = number("seconds", values.seconds, 20, 1, 600)! * 1000;
  const concurrency = number("concurrency", values.concurrency, 1000, 1, 10_000, true)!;
  const afterRefusalText = values["after-refusal"] ?? "pushback";
  const afterRefusal: AfterRefusal =
    afterRefusalText === "pushback" || afterRefusalText === "at-once"
      ? afterRefusalText
      : /^\d+$/.test(afterRefusalText) && Number(afterRefusalText) <= 60_000
        ? Number(afterRefusalText)
        : (() => {
            throw new UsageError(
              `--after-refusal: expected pushback, at-once or a number of ms up to 60000, got ${afterRefusalText}`,
            );
          })();
  // Only the full run with callers that honour the pushback goes to reports/ by default.
  const full = durationMs >= 20_000 && concurrency >= 1000 && afterRefusal === "pushback";
  return {
    durationMs,
    concurrency,
    clients: Math.min(concurrency, number("clients", values.clients, 2, 1, 64, true)!),
    deadlineMs: number("deadline", values.deadline, undefined, 1, 600_000),
    afterRefusal,
    env,
    outDir: values.out === undefined ? resolve(root, full ? "reports" : "data/overload") : resolve(values.out),
  };
}

/** One call's end: status name and latency. */
interface Outcome {
  code: string;
  ms: number;
}

/** Runs `shopmesh overload`; returns the exit code. */
export async function overload(args: string[]): Promise<number> {
  let settings: OverloadSettings;
  try {
    const read = readSettings(args);
    if (read === "help") {
      say(overloadUsage);
      return 0;
    }
    settings = read;
  } catch (error) {
    process.stderr.write(
      `shopmesh overload: ${error instanceof Error ? error.message : String(error)}\n\n${overloadUsage}\n`,
    );
    return 2;
  }

  let mesh: LoadMesh | undefined;
  const transports: GrpcTransport[] = [];
  const onInterrupt = () => {
    process.stderr.write("\nshopmesh overload: interrupted; stopping the services\n");
    void (mesh?.stop("SIGKILL") ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once("SIGINT", onInterrupt);
  process.once("SIGTERM", onInterrupt);
  try {
    const budgetMs = settings.deadlineMs ?? defaultBudgetMs;
    say(
      `shopmesh overload: ${settings.concurrency} STRONG views in flight for ${settings.durationMs / 1000} s, ${settings.deadlineMs === undefined ? "no deadline (1 s default budget)" : `deadline ${settings.deadlineMs} ms`}${
        Object.keys(settings.env).length > 0
          ? `, services with ${Object.entries(settings.env)
              .map(([k, v]) => `${k}=${v}`)
              .join(" ")}`
          : ""
      }`,
    );
    // NAME=VALUE for every service, SERVICE:NAME=VALUE for one (it wins).
    const env = Object.fromEntries(
      serviceNames.map((service) => [
        service,
        Object.fromEntries(
          Object.entries(settings.env)
            .filter(([key]) => !key.includes(":") || key.startsWith(`${service}:`))
            .sort(([a], [b]) => Number(a.includes(":")) - Number(b.includes(":")))
            .map(([key, value]) => [key.slice(key.indexOf(":") + 1), value]),
        ),
      ]),
    );
    mesh = await LoadMesh.start({ tokenTtl: "2h", faultInjection: false, env });
    const running = mesh;
    const customer = await seed(running);
    say(`  mesh up; the customer has 20 orders of 2-3 lines`);

    // The load from several processes, and health from one more, as a load balancer's checks would be.
    const timeoutMs = settings.durationMs + abandonAfterMs + 60_000;
    const poller = await startMeasuringProcess<HealthSeen[]>(
      pollerEntry,
      [
        String(settings.durationMs),
        String(healthIntervalMs),
        running.mesh.certificates?.caFile ?? "plaintext",
        ...serviceNames.map((service) => `${service}=${running.address(service)}`),
      ],
      timeoutMs,
    );
    const shares = Array.from(
      { length: settings.clients },
      (_, i) =>
        Math.floor(settings.concurrency / settings.clients) + (i < settings.concurrency % settings.clients ? 1 : 0),
    );
    const workers = await Promise.all(
      shares.map((concurrency) => {
        const workerSettings: ViewLoadSettings = {
          target: running.address("user-orders"),
          caFile: running.mesh.certificates?.caFile,
          token: customer.token,
          userId: customer.userId,
          concurrency,
          connections: 2,
          durationMs: settings.durationMs,
          deadlineMs: settings.deadlineMs,
          abandonAfterMs,
          afterRefusal: settings.afterRefusal,
        };
        return startMeasuringProcess<ViewLoadResult>(workerEntry, [JSON.stringify(workerSettings)], timeoutMs);
      }),
    );
    const started = performance.now();
    for (const process of [poller, ...workers]) process.go();
    const results = await Promise.all(workers.map((worker) => worker.result));
    const elapsedMs = performance.now() - started;
    const health = await poller.result;
    const outcomes: Outcome[] = results.flatMap((result) => result.outcomes.map(([code, ms]) => ({ code, ms })));

    const report = summarise(settings, budgetMs, elapsedMs, outcomes, health, running.exited());
    report.serverAnswered = await running.serverAnswers("user-orders", "GetUserOrders", budgetMs);
    report.gcPauses = running.gcPauses("user-orders");
    // The servers log their refusal times as they stop.
    await running.stop("SIGTERM");
    report.serverRefusals = running.serverRefusals();
    report.messages = Object.assign({}, ...results.map((result) => result.messages)) as Record<string, string>;
    const pushbacks = results.flatMap((result) => result.pushbacks);
    report.pushback = {
      count: pushbacks.length,
      p50Ms: quantile(pushbacks, 0.5) ?? 0,
      p90Ms: quantile(pushbacks, 0.9) ?? 0,
      p99Ms: quantile(pushbacks, 0.99) ?? 0,
      maxMs: pushbacks.reduce((max, value) => Math.max(max, value), 0),
    };
    // The worst of the load processes.
    report.clientLoopDelay = {
      p50Ms: Math.max(...results.map((result) => result.loopDelay.p50Ms)),
      p99Ms: Math.max(...results.map((result) => result.loopDelay.p99Ms)),
      maxMs: Math.max(...results.map((result) => result.loopDelay.maxMs)),
    };
    report.command = ["shopmesh", "overload", ...args].join(" ");
    const paths = writeOverloadReport(report, settings.outDir);
    say("");
    say(
      renderOverloadMarkdown(report)
        .split("\n")
        .filter((line) => line.startsWith("|") || line.startsWith("**"))
        .join("\n"),
    );
    const nearby = (path: string) =>
      relative(process.cwd(), path).startsWith("..") ? path : relative(process.cwd(), path);
    say(`\nreports: ${nearby(paths.markdown)}, ${nearby(paths.json)}`);
    return report.otherCodes.INTERNAL || report.exited.length > 0 ? 1 : 0;
  } catch (error) {
    process.stderr.write(`shopmesh overload: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    process.off("SIGINT", onInterrupt);
    process.off("SIGTERM", onInterrupt);
    for (const transport of transports) transport.close();
    await mesh?.stop("SIGTERM");
  }
}

/** An admin, 20 products and a customer with 20 orders of 2-3 lines: a view the size the bench measures. */
async function seed(mesh: LoadMesh): Promise<{ userId: string; token: string }> {
  const users = createClient(UsersService, mesh.transport("users"));
  const admin = await users.signUp(loadAdmin);
  const catalog = createClient(ProductsService, mesh.transport("products", admin.session!.accessToken));
  const productIds: string[] = [];
  for (let index = 0; index < 20; index++) {
    const { product } = await catalog.createProduct({
      name: `Overload product ${index + 1}`,
      description: "",
      price: { currencyCode: "EUR", minorUnits: BigInt(500 + index) },
    });
    productIds.push(product!.id);
  }
  const { user, session } = await users.signUp({
    email: "customer@overload.shopmesh.local",
    password: "overload-customer",
    displayName: "Overload Customer",
  });
  const orders = createClient(OrdersService, mesh.transport("orders", session!.accessToken));
  for (let index = 0; index < 20; index++) {
    await orders.createOrder({
      requestId: `overload-${index}`,
      items: Array.from({ length: 2 + (index % 2) }, (_, line) => ({
        productId: productIds[(index * 3 + line * 7) % productIds.length]!,
        quantity: 1 + line,
      })),
    });
  }
  return { userId: user!.id, token: session!.accessToken };
}

function summarise(
  settings: OverloadSettings,
  budgetMs: number,
  elapsedMs: number,
  outcomes: Outcome[],
  health: HealthSeen[],
  exited: string[],
): OverloadReport {
  const answered = outcomes.filter((o) => o.code === "OK").map((o) => o.ms);
  const refused = outcomes.filter((o) => o.code === "RESOURCE_EXHAUSTED").map((o) => o.ms);
  const otherCodes: Record<string, number> = {};
  const otherLatency: Record<string, number[]> = {};
  for (const o of outcomes) {
    if (o.code === "OK" || o.code === "RESOURCE_EXHAUSTED") continue;
    tally(otherCodes, o.code);
    otherLatency[o.code] ??= [];
    otherLatency[o.code]!.push(o.ms);
  }
  const spread = (values: number[]) => ({
    p50Ms: quantile(values, 0.5) ?? 0,
    p90Ms: quantile(values, 0.9) ?? 0,
    p99Ms: quantile(values, 0.99) ?? 0,
    maxMs: values.length === 0 ? 0 : Math.max(...values),
  });
  return {
    generatedAt: new Date().toISOString(),
    command: "",
    machine: thisMachine(),
    settings: {
      seconds: settings.durationMs / 1000,
      concurrency: settings.concurrency,
      clients: settings.clients,
      deadlineMs: settings.deadlineMs,
      afterRefusal: settings.afterRefusal,
      budgetMs,
      env: settings.env,
      healthIntervalMs,
    },
    elapsedSeconds: elapsedMs / 1000,
    calls: outcomes.length,
    answered: {
      count: answered.length,
      perSecond: answered.length / (elapsedMs / 1000),
      ...spread(answered),
      withinBudgetPlus50:
        answered.length === 0 ? 0 : answered.filter((ms) => ms <= budgetMs + 50).length / answered.length,
    },
    refused: {
      count: refused.length,
      within10Ms: refused.length === 0 ? 0 : refused.filter((ms) => ms <= 10).length / refused.length,
      ...spread(refused),
    },
    otherCodes,
    otherLatency: Object.fromEntries(Object.entries(otherLatency).map(([code, values]) => [code, spread(values)])),
    health: health.map((entry) => {
      const ok = entry.outcomes.filter((o) => o.code === "OK");
      const failures: Record<string, number> = {};
      for (const o of entry.outcomes) if (o.code !== "OK") tally(failures, o.code);
      return {
        service: entry.service,
        checks: entry.outcomes.length,
        serving: ok.length - entry.notServing,
        notServing: entry.notServing,
        failures,
        ...spread(entry.outcomes.map((o) => o.ms)),
      };
    }),
    messages: {},
    clientLoopDelay: { p50Ms: 0, p99Ms: 0, maxMs: 0 },
    exited,
  };
}
