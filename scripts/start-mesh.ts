// `npm start` (also `shopmesh start`): runs the shopmesh services, each as
// its own process on its well-known port, seeds a demo data set on the first
// start, prints how to call the services, and starts again a service that
// exits. Ctrl-C stops them all.
import { createWriteStream, existsSync, mkdirSync, type WriteStream } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, defaultAdminPort, defaultHttpPort, defaultMetricsPort, envReader } from "@shopmesh/chassis";
import { createClient, createTransport } from "@shopmesh/sdk";
import { UsersService } from "@shopmesh/sdk/users/v1";
import {
  busyPortLines,
  entryOf,
  findBusyPorts,
  LocalMesh,
  parseCommandLine,
  serviceNames,
  usageFailure,
  UsageError,
  waitForProjection,
  type ServiceName,
  RestartOnExit,
  seedOnce,
  type SeedRecord,
} from "@shopmesh/cli";
import { consoleTracingEnv, defaultConsolePort, type RunningConsole, startMeshConsole } from "@shopmesh/console";

const startUsage = `usage: npm start [-- <service>...]    or: npx shopmesh start [<service>...]

Runs the services, each as its own process, on their well-known ports; seeds a
demo catalog, users and orders on the first start; prints commands to call
them. A service that exits is started again after 1 s (doubling, up to 30 s,
while it keeps failing); the others keep serving. Ctrl-C stops them all.

  <service>   run only these (${serviceNames.join(", ")}); the others are
              expected on their own ports, e.g. from another npm start
  --help      print this and exit

  SHOPMESH_PORT_BASE  first of the four ports: users, products, orders, user-orders
                      (default 50051); each admin listener is 20000 below its service
                      (10000 above for a port below 21024), each HTTP listener (Connect,
                      gRPC-Web: curl, browsers) 1000 above, and each serves Prometheus
                      metrics at http://127.0.0.1:<port + 2000>/metrics
  METRICS_PORT=off    serve no metrics
  CONSOLE_PORT        the web console's port on 127.0.0.1 (default: 1 below the first admin
                      listener, 30050; 0: any free port); CONSOLE=off serves none, and
                      a start of some services only serves one only when CONSOLE_PORT is set
  DATA_DIR            where the databases, keys, seed.json and logs/ go (default: data/
                      in the repository, wherever the command runs from)
  TLS                 on (default): mutual TLS between the services and TLS for every
                      caller, with a development CA and certificates made under
                      DATA_DIR/tls on the first start; off: plaintext everywhere`;

const root = fileURLToPath(new URL("..", import.meta.url));
const host = "127.0.0.1";
const addressOf = (port: number) => `${host}:${port}`;

interface StartSettings {
  services: ServiceName[];
  dataDir: string;
  ports: Record<ServiceName, number>;
  metrics: boolean;
  tls: boolean;
  /** The console's port; undefined with CONSOLE=off. */
  consolePort: number | undefined;
}

/** Reads the command line and the environment; undefined for --help. */
function readStartSettings(args: string[]): StartSettings | undefined {
  const { values, positionals } = parseCommandLine({
    args,
    allowPositionals: true,
    options: { help: { type: "boolean", short: "h", default: false } },
  });
  if (values.help) return undefined;
  for (const name of positionals) {
    if (!(serviceNames as readonly string[]).includes(name))
      throw new UsageError(`unknown service '${name}' (one of ${serviceNames.join(", ")})`);
  }
  const read = envReader();
  const basePort = read.int("SHOPMESH_PORT_BASE", 50051, { min: 1024, max: 65532 });
  const wanted = positionals.length === 0 ? serviceNames : serviceNames.filter((s) => positionals.includes(s));
  return {
    services: wanted.filter((service) => existsSync(entryOf(service))),
    dataDir: resolve(read.string("DATA_DIR", join(root, "data"))),
    ports: { users: basePort, products: basePort + 1, orders: basePort + 2, "user-orders": basePort + 3 },
    metrics: read.string("METRICS_PORT", "").toLowerCase() !== "off",
    tls: read.bool("TLS", true),
    // One console per mesh: a start of some services only, beside another npm start, serves none unless asked to.
    consolePort:
      read.bool("CONSOLE", true) && (positionals.length === 0 || process.env.CONSOLE_PORT !== undefined)
        ? read.int("CONSOLE_PORT", defaultConsolePort(basePort), { min: 0, max: 65535 })
        : undefined,
  };
}

/** Set when whoever read the output has gone: nothing more is written. */
let outputGone = false;
const say = (line = "") => {
  if (!outputGone) process.stdout.write(`${line}\n`);
};
const logs = new Map<ServiceName, WriteStream>();
let settings: StartSettings;
let mesh: LocalMesh | undefined;
/** The mesh's start while it is under way: Ctrl-C then abandons it and waits until what it started has exited. */
let meshStart: Promise<LocalMesh> | undefined;
const abandon = new AbortController();
let restarts: RestartOnExit | undefined;
let meshConsole: RunningConsole | undefined;
let seedRecord: SeedRecord | undefined;
let stopping = false;
/**
 * How long a service may drain after SIGTERM before it gets SIGKILL: longer
 * than SHUTDOWN_DELAY plus SHUTDOWN_GRACE by default (0 s and 10 s), so that
 * only a stuck process is killed.
 */
const stopGraceMs = 30_000;

async function main(): Promise<number | undefined> {
  let parsed: StartSettings | undefined;
  try {
    parsed = readStartSettings(process.argv.slice(2));
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`shopmesh start: ${error.message}\n`);
      return 2;
    }
    return usageFailure("start", error);
  }
  if (parsed === undefined) {
    say(startUsage);
    return 0;
  }
  settings = parsed;
  const { services, dataDir, ports } = settings;

  // Every port, the admin listeners' too, before anything starts: a clash found by EADDRINUSE would leave half a mesh.
  const busy = await findBusyPorts(
    services
      .flatMap((service) => [
        { port: ports[service], what: service },
        { port: defaultAdminPort(ports[service]), what: `${service} admin` },
        ...(settings.metrics ? [{ port: defaultMetricsPort(ports[service]), what: `${service} metrics` }] : []),
        { port: defaultHttpPort(ports[service]), what: `${service} HTTP` },
      ])
      .concat(settings.consolePort ? [{ port: settings.consolePort, what: "console" }] : []),
    host,
  );
  if (busy.length > 0) {
    for (const line of busyPortLines(busy, "SHOPMESH_PORT_BASE=<first port>")) say(line);
    return 1;
  }

  mkdirSync(join(dataDir, "logs"), { recursive: true });
  if (settings.consolePort !== undefined) {
    // The mesh runs without its console rather than not at all (a page that does not build, say).
    meshConsole = await startMeshConsole({
      port: settings.consolePort,
      ports,
      metrics: settings.metrics,
      mesh: () => mesh,
      loadUserId: () => seedRecord?.accounts.alice.userId,
    }).catch((error: unknown) => {
      say(`✗ the console did not start (${firstLine(error)}); the services start without it`);
      return undefined;
    });
  }
  const read = envReader();
  const common = {
    HOST: host,
    LOG_LEVEL: read.string("LOG_LEVEL", "info"),
    // A local mesh is for experiments: `shopmesh chaos` may inject faults.
    FAULT_INJECTION: read.string("FAULT_INJECTION", "on"),
    // The console draws the traces of the views it sends; a collector of one's own comes first.
    ...(meshConsole === undefined ||
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT ||
    process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
      ? {}
      : consoleTracingEnv(meshConsole.otlpEndpoint)),
  };
  const envOf = (service: ServiceName) => ({
    ...common,
    ADMIN_PORT: String(defaultAdminPort(ports[service])),
    METRICS_PORT: settings.metrics ? String(defaultMetricsPort(ports[service])) : "off",
    HTTP_PORT: String(defaultHttpPort(ports[service])),
  });
  meshStart = LocalMesh.start({
    signal: abandon.signal,
    dataDir,
    services,
    ports,
    tls: settings.tls,
    env: {
      users: { ...envOf("users"), ADMIN_EMAILS: "admin@shopmesh.local" },
      products: envOf("products"),
      orders: envOf("orders"),
      "user-orders": envOf("user-orders"),
    },
    spawn: (service) => {
      let log = logs.get(service);
      if (!log) {
        log = createWriteStream(join(dataDir, "logs", `${service}.log`), { flags: "a" });
        logs.set(service, log);
      }
      const open = log;
      return {
        keepLogs: false,
        onLog: (entry) => {
          open.write(`${JSON.stringify(entry)}\n`);
          if (entry.msg === "ready") announce(service, entry);
        },
        onStderr: (text) => open.write(text),
      };
    },
  });
  mesh = await meshStart;
  // Ctrl-C came as the last service became ready: stopAll stops them.
  if (stopping) return undefined;
  restarts = new RestartOnExit(mesh, {
    exited: (service, how, delayMs) =>
      say(
        `✗ ${service} exited (${how}); the other services keep serving. Starting it again in ${seconds(delayMs)}; see ${logOf(service)}`,
      ),
    failed: (service, error, delayMs) =>
      say(
        `✗ ${service} did not start (${firstLine(error)}); trying again in ${seconds(delayMs)}; see ${logOf(service)}`,
      ),
    gaveUp: (service, times) =>
      say(`✗ ${service} did not start ${times} times in a row: no more tries. See ${logOf(service)}`),
  });
  restarts.watchAll();

  const running = (service: ServiceName) => mesh?.processes.has(service) ?? false;
  if (!running("users") || !running("products") || !running("orders")) {
    const others = serviceNames.filter((service) => !running(service));
    say(
      `Running ${services.join(", ")}; the others are expected at ${others.map((s) => `${s} ${addressOf(ports[s])}`).join(", ")}.`,
    );
    if (meshConsole !== undefined) say(`Console: ${meshConsole.url} (the mesh live)`);
    say("Press Ctrl-C to stop.");
    return undefined;
  }
  const started = mesh;
  if (started.certificates !== undefined) {
    const fresh = started.certificates.issued;
    say(
      fresh.length > 0
        ? `issued TLS certificates for ${fresh.join(", ")} (CA ${relative(process.cwd(), started.certificates.caFile)})`
        : `TLS: reusing the certificates in ${relative(process.cwd(), started.certificates.dir)}`,
    );
  }
  const { seeded, record } = await seedOnce(
    dataDir,
    {
      users: addressOf(ports.users),
      products: addressOf(ports.products),
      orders: addressOf(ports.orders),
    },
    (service) => started.clientTls(service),
  );
  seedRecord = record;
  say(seeded ? "seeded the demo catalog, users and orders" : "demo data already seeded (delete data/ to start over)");
  if (running("user-orders")) {
    say(
      (await projectionCaughtUp(record))
        ? "user-orders' projection has caught up with the event streams"
        : "user-orders' projection is still catching up",
    );
  }
  say();
  if (meshConsole !== undefined) {
    say(`Console: ${meshConsole.url} (the mesh live; sign in as ${record.accounts.admin.email} to inject faults)`);
    say();
  }
  printExamples(record);
  return undefined;
}

const seconds = (ms: number) => `${ms / 1000} s`;
const logOf = (service: ServiceName) => relative(process.cwd(), join(settings.dataDir, "logs", `${service}.log`));
const firstLine = (error: unknown) => (error instanceof Error ? error.message : String(error)).split("\n")[0];

/**
 * Waits (up to 15 s) until user-orders' projection has applied every event
 * the three streams had reported, so that EVENTUAL views include the demo
 * data before the examples are printed.
 */
async function projectionCaughtUp(record: SeedRecord): Promise<boolean> {
  const transport = createTransport({ target: addressOf(settings.ports.users), tls: mesh?.clientTls("users") });
  try {
    const alice = record.accounts.alice;
    const { session } = await createClient(UsersService, transport).signIn({
      email: alice.email,
      password: alice.password,
    });
    const wait = await waitForProjection({
      target: addressOf(settings.ports["user-orders"]),
      tls: mesh?.clientTls("user-orders"),
      token: session!.accessToken,
      userId: alice.userId,
      timeoutMs: 15_000,
      intervalMs: 100,
    });
    return wait.caughtUp;
  } finally {
    transport.close();
  }
}

function announce(service: ServiceName, ready: Record<string, unknown>): void {
  const metrics = typeof ready.metricsPort === "number" ? `  metrics http://${host}:${ready.metricsPort}/metrics` : "";
  // The HTTP port serves HTTPS whenever the gRPC port serves TLS.
  const http = settings.tls ? "https" : "http";
  say(
    `✓ ${service.padEnd(11)} ready on ${host}:${String(ready.port)}  ${http} ${host}:${String(ready.httpPort)}  pid ${String(ready.pid)}${metrics}  log ${logOf(service)}`,
  );
}

function printExamples(record: SeedRecord): void {
  // With TLS the CA certificate is all a caller outside the mesh needs: the public methods ask no client certificate.
  const ca = mesh?.certificates === undefined ? undefined : relative(process.cwd(), mesh.certificates.caFile);
  const bufCurl =
    ca === undefined
      ? "npx @bufbuild/buf curl --protocol grpc --http2-prior-knowledge"
      : `npx @bufbuild/buf curl --protocol grpc --cacert ${ca}`;
  const scheme = ca === undefined ? "http" : "https";
  const grpcurlSecurity = ca === undefined ? "-plaintext" : `-cacert ${ca}`;
  const curl = (port: number, path: string, body: string, token?: string) =>
    [
      bufCurl,
      token ? ` -H "authorization: Bearer ${token}"` : "",
      ` -d '${body}'`,
      ` ${scheme}://${addressOf(port)}/${path}`,
    ].join("");
  const grpcurl = (port: number, path: string, body: string, token?: string) =>
    `grpcurl ${grpcurlSecurity}${token ? ` -H "authorization: Bearer ${token}"` : ""} -d '${body}' ${addressOf(port)} ${path}`;
  const alice = record.accounts.alice;
  const signIn = `{"email":"${alice.email}","password":"${alice.password}"}`;
  const tokenCommand = (client: string) =>
    `export TOKEN=$(${client} | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).session.accessToken))')`;

  say("Sign in as a demo customer and keep the token (tokens last 15 minutes):");
  say(`  ${tokenCommand(curl(settings.ports.users, "shopmesh.users.v1.UsersService/SignIn", signIn))}`);
  say();
  say("Then call the services with buf curl (it ships with this project):");
  say(`  ${bufCurl} --list-services ${scheme}://${addressOf(settings.ports.products)}`);
  say(`  ${curl(settings.ports.products, "shopmesh.products.v1.ProductsService/ListProducts", '{"page_size":5}')}`);
  say(
    `  ${curl(settings.ports.users, "shopmesh.users.v1.UsersService/GetUser", `{"user_id":"${alice.userId}"}`, "$TOKEN")}`,
  );
  say(
    `  ${curl(settings.ports.orders, "shopmesh.orders.v1.OrdersService/ListOrders", `{"user_id":"${alice.userId}"}`, "$TOKEN")}`,
  );
  if (mesh?.processes.has("user-orders")) {
    say(
      `  ${curl(settings.ports["user-orders"], "shopmesh.userorders.v1.UserOrdersService/GetUserOrders", `{"user_id":"${alice.userId}"}`, "$TOKEN")}`,
    );
    const eventual = `{"user_id":"${alice.userId}","consistency":"CONSISTENCY_EVENTUAL"}`;
    say(
      `  ${curl(settings.ports["user-orders"], "shopmesh.userorders.v1.UserOrdersService/GetUserOrders", eventual, "$TOKEN")}`,
    );
  }
  say();
  say(
    `or over ${scheme === "https" ? "HTTPS" : "HTTP"} with curl (the Connect protocol, JSON; browsers also get gRPC-Web on these ports):`,
  );
  const httpCurl = (service: ServiceName, path: string, body: string, token?: string) =>
    [
      "curl",
      ca === undefined ? "" : ` --cacert ${ca}`,
      " -H 'content-type: application/json'",
      token ? ` -H "authorization: Bearer ${token}"` : "",
      ` -d '${body}'`,
      ` ${scheme}://${addressOf(defaultHttpPort(settings.ports[service]))}/${path}`,
    ].join("");
  say(`  ${httpCurl("products", "shopmesh.products.v1.ProductsService/ListProducts", '{"pageSize":3}')}`);
  say(
    `  ${httpCurl("orders", "shopmesh.orders.v1.OrdersService/ListOrders", `{"userId":"${alice.userId}"}`, "$TOKEN")}`,
  );
  say();
  say("or with grpcurl, if you have it:");
  say(`  ${tokenCommand(grpcurl(settings.ports.users, "shopmesh.users.v1.UsersService/SignIn", signIn))}`);
  say(`  grpcurl ${grpcurlSecurity} ${addressOf(settings.ports.products)} list`);
  say(
    `  ${grpcurl(settings.ports.orders, "shopmesh.orders.v1.OrdersService/ListOrders", `{"user_id":"${alice.userId}"}`, "$TOKEN")}`,
  );
  say();
  say(
    `Demo accounts: ${Object.values(record.accounts)
      .map((a) => `${a.email} / ${a.password}`)
      .join(", ")}`,
  );
  say(`For the README's commands: <alice id> is ${alice.userId}, <product id> is ${record.productIds[0] ?? "(none)"}`);
  say("Press Ctrl-C to stop every service.");
}

async function stopAll(signal: string, exitCode = 0): Promise<void> {
  if (stopping) return;
  stopping = true;
  try {
    if (mesh === undefined && meshStart !== undefined) {
      say(`\n${signal}: abandoning the start; stopping what it started...`);
      abandon.abort();
      mesh = await meshStart.catch(() => undefined);
    } else {
      say(`\n${signal}: stopping ${[...(mesh?.processes.keys() ?? [])].join(", ") || "nothing"}...`);
    }
    abandon.abort();
    await restarts?.stop();
    await mesh?.stop("SIGTERM", { killAfterMs: stopGraceMs });
    await meshConsole?.close();
    say("  every service stopped");
    for (const log of logs.values()) log.end();
  } finally {
    // A failure of the launcher meanwhile (see uncaughtException) has set exitCode already.
    process.exit(process.exitCode || exitCode);
  }
}

// The reader of the output went away (`npm start | head`, a parent that exited without a signal
// to this process): the services must not outlive the launcher, so they stop as on Ctrl-C.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code !== "EPIPE") throw error;
  outputGone = true;
  void stopAll("output closed");
});
// A fault in the launcher itself (its console included) must not leave the services running with
// nothing left to stop them.
process.on("uncaughtException", (error) => {
  process.stderr.write(`shopmesh start: ${error.stack ?? error.message}\n`);
  process.exitCode = 1;
  void stopAll("the launcher failed", 1);
});
process.on("SIGINT", () => void stopAll("SIGINT"));
process.on("SIGTERM", () => void stopAll("SIGTERM"));

main().then(
  (code) => {
    if (code !== undefined) process.exit(code);
  },
  async (error: unknown) => {
    // A start abandoned on Ctrl-C rejects here; stopAll ends the process.
    if (stopping) return;
    stopping = true;
    say(`shopmesh failed to start: ${error instanceof Error ? error.message : String(error)}`);
    // LocalMesh.start stopped what it had started; a failure after it (seeding) leaves the mesh to stop.
    abandon.abort();
    await restarts?.stop();
    await mesh?.stop("SIGTERM", { killAfterMs: stopGraceMs });
    await meshConsole?.close();
    process.exit(1);
  },
);
