// `npm start`: runs every shopmesh service as its own process on its
// well-known port, seeds a demo data set on the first start, and prints how
// to call the services. Ctrl-C stops them all.
import { createWriteStream, existsSync, mkdirSync, type WriteStream } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { envReader } from "@shopmesh/chassis";
import { createClient, createTransport } from "@shopmesh/sdk";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { entryOf, LocalMesh, serviceNames, waitForProjection, type ServiceName } from "@shopmesh/cli";
import { portIsFree } from "./mesh/ports.js";
import { seedOnce, type SeedRecord } from "./mesh/seed.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const read = envReader();
const dataDir = resolve(read.string("DATA_DIR", join(root, "data")));
const host = "127.0.0.1";
const basePort = read.int("SHOPMESH_PORT_BASE", 50051, { min: 1024, max: 65531 });

const addressOf = (port: number) => `${host}:${port}`;
const ports = { users: basePort, products: basePort + 1, orders: basePort + 2, "user-orders": basePort + 3 };
const services = serviceNames.filter((service) => existsSync(entryOf(service)));

const say = (line = "") => process.stdout.write(`${line}\n`);
const logs: WriteStream[] = [];
let mesh: LocalMesh | undefined;
let stopping = false;

async function main(): Promise<void> {
  const busy: ServiceName[] = [];
  for (const service of services) if (!(await portIsFree(ports[service], host))) busy.push(service);
  if (busy.length > 0) {
    for (const service of busy) say(`port ${ports[service]} (${service}) is busy: is shopmesh already running?`);
    say("Stop what holds the port, or choose other ports with SHOPMESH_PORT_BASE=<first port>.");
    process.exit(1);
  }

  mkdirSync(join(dataDir, "logs"), { recursive: true });
  const common = {
    HOST: host,
    LOG_LEVEL: read.string("LOG_LEVEL", "info"),
    // A local mesh is for experiments: `shopmesh chaos` may inject faults.
    FAULT_INJECTION: read.string("FAULT_INJECTION", "on"),
  };
  mesh = await LocalMesh.start({
    dataDir,
    services,
    ports,
    env: {
      users: { ...common, ADMIN_EMAILS: "admin@shopmesh.local" },
      products: common,
      orders: common,
      "user-orders": common,
    },
    spawn: (service) => {
      const log = createWriteStream(join(dataDir, "logs", `${service}.log`), { flags: "a" });
      logs.push(log);
      return {
        keepLogs: false,
        onLog: (entry) => {
          log.write(`${JSON.stringify(entry)}\n`);
          if (entry.msg === "ready") announce(service, entry);
        },
        onStderr: (text) => log.write(text),
      };
    },
  });
  for (const [service, child] of mesh.processes) {
    child.child.once("exit", (code, signal) => {
      if (!stopping) say(`✗ ${service} exited (${signal ?? `code ${code}`}); the other services keep serving. See its log.`);
    });
  }

  const { seeded, record } = await seedOnce(dataDir, {
    users: addressOf(ports.users),
    products: addressOf(ports.products),
    orders: addressOf(ports.orders),
  });
  say(seeded ? "seeded the demo catalog, users and orders" : "demo data already seeded (delete data/ to start over)");
  if (mesh.processes.has("user-orders")) {
    say((await projectionCaughtUp(record)) ? "user-orders' projection has caught up with the event streams" : "user-orders' projection is still catching up");
  }
  say();
  printExamples(record);
}

/**
 * Waits (up to 15 s) until user-orders' projection has applied every event
 * the three streams had reported, so that EVENTUAL views include the demo
 * data before the examples are printed.
 */
async function projectionCaughtUp(record: SeedRecord): Promise<boolean> {
  const transport = createTransport({ target: addressOf(ports.users) });
  try {
    const alice = record.accounts.alice;
    const { session } = await createClient(UsersService, transport).signIn({ email: alice.email, password: alice.password });
    const wait = await waitForProjection({
      target: addressOf(ports["user-orders"]),
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
  const logPath = relative(process.cwd(), join(dataDir, "logs", `${service}.log`));
  say(`✓ ${service.padEnd(11)} ready on ${host}:${String(ready.port)}  pid ${String(ready.pid)}  log ${logPath}`);
}

function printExamples(record: SeedRecord): void {
  const curl = (port: number, path: string, body: string, token?: string) =>
    [
      "npx @bufbuild/buf curl --protocol grpc --http2-prior-knowledge",
      token ? ` -H "authorization: Bearer ${token}"` : "",
      ` -d '${body}'`,
      ` http://${addressOf(port)}/${path}`,
    ].join("");
  const grpcurl = (port: number, path: string, body: string, token?: string) =>
    `grpcurl -plaintext${token ? ` -H "authorization: Bearer ${token}"` : ""} -d '${body}' ${addressOf(port)} ${path}`;
  const alice = record.accounts.alice;
  const signIn = `{"email":"${alice.email}","password":"${alice.password}"}`;
  const tokenCommand = (client: string) =>
    `export TOKEN=$(${client} | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).session.accessToken))')`;

  say("Sign in as a demo customer and keep the token (tokens last 15 minutes):");
  say(`  ${tokenCommand(curl(ports.users, "shopmesh.users.v1.UsersService/SignIn", signIn))}`);
  say();
  say("Then call the services with buf curl (it ships with this project):");
  say(`  npx @bufbuild/buf curl --protocol grpc --http2-prior-knowledge --list-services http://${addressOf(ports.products)}`);
  say(`  ${curl(ports.products, "shopmesh.products.v1.ProductsService/ListProducts", '{"page_size":5}')}`);
  say(`  ${curl(ports.users, "shopmesh.users.v1.UsersService/GetUser", `{"user_id":"${alice.userId}"}`, "$TOKEN")}`);
  say(`  ${curl(ports.orders, "shopmesh.orders.v1.OrdersService/ListOrders", `{"user_id":"${alice.userId}"}`, "$TOKEN")}`);
  if (mesh?.processes.has("user-orders")) {
    say(`  ${curl(ports["user-orders"], "shopmesh.userorders.v1.UserOrdersService/GetUserOrders", `{"user_id":"${alice.userId}"}`, "$TOKEN")}`);
    const eventual = `{"user_id":"${alice.userId}","consistency":"CONSISTENCY_EVENTUAL"}`;
    say(`  ${curl(ports["user-orders"], "shopmesh.userorders.v1.UserOrdersService/GetUserOrders", eventual, "$TOKEN")}`);
  }
  say();
  say("or with grpcurl, if you have it:");
  say(`  ${tokenCommand(grpcurl(ports.users, "shopmesh.users.v1.UsersService/SignIn", signIn))}`);
  say(`  grpcurl -plaintext ${addressOf(ports.products)} list`);
  say(`  ${grpcurl(ports.orders, "shopmesh.orders.v1.OrdersService/ListOrders", `{"user_id":"${alice.userId}"}`, "$TOKEN")}`);
  say();
  say(`Demo accounts: ${Object.values(record.accounts).map((a) => `${a.email} / ${a.password}`).join(", ")}`);
  say(`For the README's commands: <alice id> is ${alice.userId}, <product id> is ${record.productIds[0] ?? "(none)"}`);
  say("Press Ctrl-C to stop every service.");
}

async function stopAll(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  say(`\n${signal}: stopping ${[...(mesh?.processes.keys() ?? [])].join(", ") || "nothing"}...`);
  await mesh?.stop("SIGTERM");
  say("  every service stopped");
  for (const log of logs) log.end();
  process.exit(0);
}

process.on("SIGINT", () => void stopAll("SIGINT"));
process.on("SIGTERM", () => void stopAll("SIGTERM"));

main().catch(async (error: unknown) => {
  say(`shopmesh failed to start: ${error instanceof Error ? error.message : String(error)}`);
  stopping = true;
  await mesh?.stop("SIGTERM");
  process.exit(1);
});
