// Runs the real `shopmesh` bin as a user would and checks what it prints and
// its exit code for the rough edges of its command line: --version, unknown
// commands and options, values out of range, an unreachable mesh, `start
// --help`, and `start` with one of its ports (a service's or an admin
// listener's) already held.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { defaultAdminPort } from "@shopmesh/chassis";
import { portIsFree } from "../src/mesh/port-check.js";

const bin = fileURLToPath(new URL("../bin/shopmesh.mjs", import.meta.url));
const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string;
};
const dataDir = mkdtempSync(join(tmpdir(), "shopmesh-cli-test-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the bin; a run still going after `timeoutMs` is killed (its services with it) and reported with code null. */
async function shopmesh(args: string[], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<Run> {
  const child = spawn(process.execPath, [bin, ...args], {
    env: { ...process.env, DATA_DIR: dataDir, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), timeoutMs);
  const [code] = (await once(child, "exit")) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

const listen = (port: number) =>
  new Promise<Server>((resolve, reject) => {
    const server = createServer().once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
const close = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

/** A port nothing listens on (connections to it are refused). */
async function closedPort(): Promise<number> {
  const server = await listen(0);
  const { port } = server.address() as { port: number };
  await close(server);
  return port;
}

/** A base whose four service ports and four admin ports are all free. */
async function freeBase(from = 21_100, to = 32_000): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = from + Math.floor(Math.random() * (to - from));
    const ports = [0, 1, 2, 3].flatMap((i) => [base + i, defaultAdminPort(base + i)]);
    if ((await Promise.all(ports.map((port) => portIsFree(port)))).every(Boolean)) return base;
  }
  throw new Error("no free base");
}

describe("shopmesh", { timeout: 60_000 }, () => {
  it("prints its version for --version", async () => {
    const run = await shopmesh(["--version"]);
    expect(run).toEqual({ code: 0, stdout: `shopmesh ${version}\n`, stderr: "" });
  });

  it("names an unknown command, with a short hint instead of the whole usage, and exits 2", async () => {
    const run = await shopmesh(["frobnicate"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe("shopmesh: unknown command 'frobnicate'\nRun 'shopmesh --help' for the commands.\n");
    expect(run.stdout).toBe("");
  });

  it("prints the usage for --help and exits 0", async () => {
    const run = await shopmesh(["--help"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("usage: shopmesh <command>");
  });
});

describe("shopmesh chaos", { timeout: 60_000 }, () => {
  it("names an unknown option in one line, without a stack trace, and exits 2", async () => {
    const run = await shopmesh(["chaos", "products", "--foo"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe("shopmesh chaos: unknown option '--foo'\nRun 'shopmesh chaos --help' for its options.\n");
  });

  it.each([
    [["--error-rate", "7"], '--error-rate: "7" is not a fraction from 0 to 1'],
    [["--error-rate", "half"], '--error-rate: "half" is not a fraction from 0 to 1'],
    [["--latency", "1s", "--slow-probability", "1.5"], '--slow-probability: "1.5" is not a fraction from 0 to 1'],
    [["--latency", "soon"], '--latency: "soon" is not a duration such as 300ms or 2s'],
    [["--latency", "300"], '--latency: "300" is not a duration such as 300ms or 2s'],
    [["--error-rate", "0x1"], '--error-rate: "0x1" is not a fraction from 0 to 1'],
    [["--error-rate", "1e-1"], '--error-rate: "1e-1" is not a fraction from 0 to 1'],
    [["--method", "", "--hang"], "--method: a method's name, such as GetProduct"],
    [["--method", "GetProduct", "--method", "ListProducts", "--hang"], "--method: one method a command (given 2)"],
    [["--hang", "--clear"], "--clear takes no --hang"],
    [["--list", "--method", "GetProduct"], "--list takes no --method"],
  ])("refuses %j before calling anything, naming the option", async (options, message) => {
    const admin = `127.0.0.1:${await closedPort()}`;
    const run = await shopmesh(["chaos", "products", "--admin", admin, ...options]);
    expect(run.code).toBe(2);
    expect(run.stderr.split("\n")[0]!.startsWith(`shopmesh chaos: ${message}`), run.stderr).toBe(true);
    expect(run.stderr).not.toContain("cannot reach");
  });

  it("says that npm start may not be running when the admin listener cannot be reached", async () => {
    const port = await closedPort();
    const run = await shopmesh(["chaos", "products", "--hang", "--admin", `127.0.0.1:${port}`]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `shopmesh chaos: cannot reach products' admin listener at 127.0.0.1:${port}: is \`npm start\` running?\n`,
    );
  });

  it("names a CA certificate it cannot read, a folder given for it, without a stack trace", async () => {
    const run = await shopmesh(["keys", "list", "--cacert", dataDir]);
    expect(run.code).toBe(2);
    expect(run.stderr.split("\n")[0]).toBe(`shopmesh keys: cannot read the CA certificate ${dataDir}: EISDIR`);
    expect(run.stderr).not.toMatch(/^\s+at /m);
  });

  it.each([
    [
      ["chaos", "products", "--list"],
      { SHOPMESH_PORT_BASE: "abc" },
      'shopmesh chaos: SHOPMESH_PORT_BASE="abc" is not valid',
    ],
    [["chaos", "products", "--list", "--admin", ""], {}, 'shopmesh chaos: --admin: "" is not host:port'],
    [
      ["chaos", "products", "--list", "--admin", "products"],
      {},
      'shopmesh chaos: --admin: "products" is not host:port',
    ],
    [["keys", "list"], { SHOPMESH_PORT_BASE: "99999" }, 'shopmesh keys: SHOPMESH_PORT_BASE="99999" is not valid'],
    [["keys", "list"], { TLS: "maybe" }, 'shopmesh keys: TLS="maybe" is not valid'],
    [["keys", "list", "--target", ""], {}, 'shopmesh keys: --target: "" is not host:port'],
  ])("refuses %j with %j in one line and exit 2, before calling anything", async (args, env, message) => {
    const run = await shopmesh(args, env);
    expect(run.code).toBe(2);
    expect(run.stderr.split("\n")[0]!.startsWith(message), run.stderr).toBe(true);
    expect(run.stderr).not.toMatch(/^\s+at /m);
  });

  it("refuses a --cacert that holds no certificate, naming it", async () => {
    const notACertificate = join(dataDir, "not-a-certificate.pem");
    writeFileSync(notACertificate, "garbage\n");
    const run = await shopmesh(["keys", "list", "--cacert", notACertificate]);
    expect(run.code).toBe(2);
    expect(run.stderr.split("\n")[0]).toBe(
      `shopmesh keys: ${notACertificate} holds no certificate in PEM (the mesh's is data/tls/ca.pem)`,
    );
  });

  it("looks for npm start's admin listener below the ephemeral range, moved by SHOPMESH_PORT_BASE", async () => {
    const base = await freeBase();
    const run = await shopmesh(["chaos", "orders", "--list"], { SHOPMESH_PORT_BASE: String(base) });
    expect(run.stderr).toBe(
      `shopmesh chaos: cannot reach orders' admin listener at 127.0.0.1:${defaultAdminPort(base + 2)}: is \`npm start\` running?\n`,
    );
    expect(defaultAdminPort(50051 + 2)).toBe(30053);
  });
});

describe("shopmesh start", { timeout: 60_000 }, () => {
  it("prints its usage for --help and starts nothing", async () => {
    const run = await shopmesh(["start", "--help"], { SHOPMESH_PORT_BASE: String(await freeBase()) });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("usage: npm start [-- <service>...]");
    expect(run.stdout).not.toContain("ready on");
  });

  it("names an unknown service and exits 2", async () => {
    const run = await shopmesh(["start", "prodcts"], { SHOPMESH_PORT_BASE: String(await freeBase()) });
    expect(run.code).toBe(2);
    expect(run.stderr.split("\n")[0]).toBe(
      "shopmesh start: unknown service 'prodcts' (one of users, products, orders, user-orders)",
    );
  });

  it("finds a taken admin port before it starts any service", async () => {
    const base = await freeBase();
    const admin = defaultAdminPort(base);
    const holder = await listen(admin);
    try {
      const run = await shopmesh(["start"], { SHOPMESH_PORT_BASE: String(base) });
      expect(run.code).toBe(1);
      expect(run.stdout).toContain(
        `port ${admin} (users admin) is busy: a server listens on it (is shopmesh already running?)`,
      );
      expect(run.stdout).not.toContain("ready on");
    } finally {
      await close(holder);
    }
  });

  it("says when an outgoing connection holds a port, and how to move the mesh below the ephemeral range", async () => {
    // An outgoing connection the system gave a port from its ephemeral range, as any client's would be.
    const server = await listen(0);
    const sockets: Socket[] = [];
    server.on("connection", (socket) => sockets.push(socket));
    let base = 0;
    let held = 0;
    for (let attempt = 0; attempt < 20 && base === 0; attempt++) {
      const client = connect((server.address() as { port: number }).port, "127.0.0.1");
      sockets.push(client);
      await once(client, "connect");
      held = client.localPort!;
      const others = [held - 1, held + 1, held + 2]
        .flatMap((port) => [port, defaultAdminPort(port)])
        .concat(defaultAdminPort(held));
      if (held - 1 <= 65_532 && (await Promise.all(others.map((port) => portIsFree(port)))).every(Boolean))
        base = held - 1;
    }
    try {
      expect(base).toBeGreaterThan(0);
      const run = await shopmesh(["start"], { SHOPMESH_PORT_BASE: String(base) });
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(
        new RegExp(
          `port ${held} \\(products\\) is busy: an outgoing connection \\(ESTABLISHED\\) holds it, not a server`,
        ),
      );
      expect(run.stdout).toMatch(/choose ports below \d+ with SHOPMESH_PORT_BASE=<first port>/);
      expect(run.stdout).not.toContain("already running");
    } finally {
      for (const socket of sockets) socket.destroy();
      await close(server);
    }
  });
});
