import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@connectrpc/connect";
import { createTransport } from "@shopmesh/sdk";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { defaultMetricsPort } from "@shopmesh/chassis";
import { portIsFree } from "@shopmesh/cli";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { freePortBase } from "../support/free-port.js";
import { processesWithEnv } from "../support/processes-with-env.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), "shopmesh-start-"));

interface Launcher {
  child: ChildProcess;
  lines: string[];
  /** Resolves with the first printed line matching, waiting for it if need be. */
  waitFor(pattern: RegExp): Promise<string>;
  exited: Promise<number | null>;
}

/** Runs `npm start` (start-mesh.ts) with `args`, or the command given, in its own process group. */
function launch(
  base: number,
  args: string[] = [],
  command = [process.execPath, "--import", "tsx", join(root, "scripts", "start-mesh.ts")],
): Launcher {
  const child = spawn(command[0]!, [...command.slice(1), ...args], {
    cwd: root,
    env: { ...process.env, DATA_DIR: dataDir, SHOPMESH_PORT_BASE: String(base) },
    stdio: ["ignore", "pipe", "inherit"],
    detached: true,
  });
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => {
    lines.push(line);
    for (const waiter of waiters.filter((w) => w.pattern.test(line))) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(line);
    }
  });
  const exited = once(child, "exit").then(([code]) => code as number | null);
  return {
    child,
    lines,
    exited,
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        const seen = lines.find((line) => pattern.test(line));
        if (seen) return resolve(seen);
        waiters.push({ pattern, resolve });
        void exited.then((code) =>
          reject(new Error(`launcher exited (${code}) before printing ${pattern}:\n${lines.join("\n")}`)),
        );
      }),
  };
}

let base: number;
let launcher: Launcher | undefined;
beforeAll(async () => {
  base = await freePortBase();
});
afterAll(async () => {
  if (launcher && launcher.child.exitCode === null) {
    launcher.child.kill("SIGINT");
    await launcher.exited;
  }
  // Whatever a failing test left running with this data folder: a launcher, or a service one left behind.
  for (const pid of processesWithEnv("DATA_DIR", dataDir)) process.kill(pid, "SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
});

/** TLS for a client of one of the mesh's services: the development CA that npm start made. */
const tls = (service: string) => ({ ca: readFileSync(join(dataDir, "tls", "ca.pem")), service });

/** Alice's access token, from the users service of the mesh. */
const signIn = async () => {
  const transport = createTransport({ target: `127.0.0.1:${base}`, tls: tls("users") });
  try {
    const { session } = await createClient(UsersService, transport).signIn({
      email: "alice@shopmesh.local",
      password: "alice-password",
    });
    return session!.accessToken;
  } finally {
    transport.close();
  }
};

const countProducts = async () => {
  const transport = createTransport({ target: `127.0.0.1:${base + 1}`, tls: tls("products") });
  try {
    return (await createClient(ProductsService, transport).listProducts({ pageSize: 100 })).products.length;
  } finally {
    transport.close();
  }
};

describe("npm start", { timeout: 120_000 }, () => {
  it("starts every service, seeds once, and prints commands that work as printed", async () => {
    launcher = launch(base);
    await launcher.waitFor(/Press Ctrl-C/);
    expect(launcher.lines.filter((line) => /^✓ \S+\s+ready on/.test(line)).length).toBeGreaterThanOrEqual(3);
    expect(launcher.lines).toContain("seeded the demo catalog, users and orders");
    // Each ready line names the service's metrics endpoint, which answers.
    const products = launcher.lines.find((line) => /^✓ products\s+ready on/.test(line))!;
    const metricsUrl = `http://127.0.0.1:${defaultMetricsPort(base + 1)}/metrics`;
    expect(products).toContain(`metrics ${metricsUrl}`);
    expect(await (await fetch(metricsUrl)).text()).toContain("rpc_server_duration_seconds_bucket");
    expect(
      launcher.lines.some((line) =>
        /^For the README's commands: <alice id> is \S+, <product id> is [0-9a-f-]{36}$/.test(line),
      ),
    ).toBe(true);

    // Each service's HTTP listener is 1000 above its gRPC port, and serves HTTPS as the gRPC port serves TLS.
    expect(launcher.lines.find((line) => line.startsWith("✓ products"))).toContain(
      `ready on 127.0.0.1:${base + 1}  https 127.0.0.1:${base + 1001} `,
    );
    // Run the printed buf curl and curl commands, in order, in one shell, as a person would.
    const commands = launcher.lines
      .map((line) => line.trim())
      .filter((line) => line.includes("npx @bufbuild/buf curl") || line.startsWith("curl "));
    expect(commands.filter((command) => command.startsWith("curl ")).length).toBe(2);
    expect(commands.length).toBeGreaterThanOrEqual(6);
    // The gRPC port over TLS, with only the development CA's certificate.
    for (const command of commands.filter((command) => command.includes("buf curl")))
      expect(command).toMatch(/--cacert \S*ca\.pem .*https:\/\//);
    // The HTTP port over HTTPS, curl given the same certificate.
    for (const command of commands.filter((command) => command.startsWith("curl ")))
      expect(command).toMatch(
        new RegExp(
          `^curl --cacert \\S*ca\\.pem .* https://127\\.0\\.0\\.1:(${[0, 1, 2, 3].map((i) => base + 1000 + i).join("|")})/`,
        ),
      );
    expect(
      launcher.lines.some((line) =>
        line.startsWith("issued TLS certificates for users, products, orders, user-orders"),
      ),
    ).toBe(true);
    for (const key of ["ca-key.pem", "users-key.pem", "user-orders-key.pem"])
      expect(statSync(join(dataDir, "tls", key)).mode & 0o777).toBe(0o600);
    const script = ["set -e", ...commands.flatMap((command) => [command, 'echo "--- ok"'])].join("\n");
    const run = spawnSync("bash", ["-c", script], { cwd: root, encoding: "utf8", timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.split("--- ok").length - 1).toBe(commands.length);
    expect(run.stdout).toContain("shopmesh.products.v1.ProductsService");
    expect(run.stdout).toContain('"orders"');
    expect(run.stdout).toContain('"email": "alice@shopmesh.local"');
    // The EVENTUAL view, from user-orders' projection, says how far behind each stream it is.
    expect(launcher.lines).toContain("user-orders' projection has caught up with the event streams");
    expect(run.stdout).toContain('"consistency": "CONSISTENCY_EVENTUAL"');
    expect(run.stdout).toContain('"streamLags"');
    // The curl lines' answers: Connect's JSON, on one line.
    expect(run.stdout).toMatch(/^\{"products":\[\{"id":"/m);
    expect(run.stdout).toMatch(/^\{"orders":\[\{"id":"/m);
    expect(await countProducts()).toBe(12);
    // npm start, then six npx processes one after another: on a loaded two-core machine more than the default 30 s.
  }, 120_000);

  it("keeps the other services serving when one process dies, and starts it again", async () => {
    const users = await launcher!.waitFor(/^✓ users/);
    const pid = Number(/pid (\d+)/.exec(users)![1]);
    process.kill(pid, "SIGKILL");
    await launcher!.waitFor(/users exited \(SIGKILL\); the other services keep serving\. Starting it again in 1 s/);
    expect(await countProducts()).toBe(12);
    const again = await launcher!.waitFor(new RegExp(`^✓ users .* pid (?!${pid}\\b)\\d+`));
    expect(again).toContain(`ready on 127.0.0.1:${base} `);
    expect((await signIn()).length).toBeGreaterThan(0);
    expect(await countProducts()).toBe(12);
  });

  it("stops every service on Ctrl-C, and does not seed twice on the next start", async () => {
    launcher!.child.kill("SIGINT");
    expect(await launcher!.exited).toBe(0);
    expect(await portIsFree(base + 1)).toBe(true);

    launcher = launch(base);
    await launcher.waitFor(/Press Ctrl-C/);
    expect(launcher.lines.some((line) => line.startsWith("demo data already seeded"))).toBe(true);
    expect(launcher.lines.some((line) => line.startsWith("TLS: reusing the certificates"))).toBe(true);
    expect(await countProducts()).toBe(12);
  });

  it("refuses to start, naming the port, when a port is busy", async () => {
    const second = launch(base);
    expect(await second.exited).toBe(1);
    expect(second.lines.join("\n")).toMatch(
      new RegExp(
        `^ports ${base} \\(users\\), .* are busy: servers listen on them \\(is shopmesh already running\\?\\)$`,
        "m",
      ),
    );
  });

  it("runs one service from its own workspace against the others: npm start -w @shopmesh/products", async () => {
    launcher!.child.kill("SIGINT");
    expect(await launcher!.exited).toBe(0);
    launcher = launch(base, ["users", "orders", "user-orders"]);
    await launcher.waitFor(/^Running users, orders, user-orders; the others are expected at products 127\.0\.0\.1:\d+/);

    const products = launch(base, [], ["npm", "start", "-w", "@shopmesh/products"]);
    try {
      const ready = await products.waitFor(/^✓ products/);
      expect(ready).toContain(`ready on 127.0.0.1:${base + 1} `);
      // The catalog seeded before, from the shared data directory, and orders prices an order through it.
      expect(await countProducts()).toBe(12);
      const seed = JSON.parse(readFileSync(join(dataDir, "seed.json"), "utf8")) as { productIds: string[] };
      const transport = createTransport({
        target: `127.0.0.1:${base + 2}`,
        token: await signIn(),
        tls: tls("orders"),
      });
      try {
        const { order } = await createClient(OrdersService, transport).createOrder({
          requestId: `one-service-${process.pid}`,
          items: [{ productId: seed.productIds[0]!, quantity: 1 }],
        });
        expect(order?.lines[0]?.productId).toBe(seed.productIds[0]);
      } finally {
        transport.close();
      }
    } finally {
      // Ctrl-C in its terminal: the whole process group (npm, shopmesh, the launcher, the service).
      // The group is signalled even when npm itself has exited, since the
      // service it started may still run. A group already gone (its start
      // failed) gives ESRCH, and the failure above is what the test reports.
      interruptGroup(products.child.pid!);
      await products.exited;
    }
    expect(await portIsFree(base + 1)).toBe(true);
  });
});

/** Ctrl-C to a process group; a group already gone (ESRCH) has nothing left to stop. */
function interruptGroup(leader: number): void {
  try {
    process.kill(-leader, "SIGINT");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}
