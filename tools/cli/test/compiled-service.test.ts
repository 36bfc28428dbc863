// The production path: `npm run build`, the compiled workspaces staged the
// way the Dockerfile stages them (scripts/stage-production.mjs: dist/ and
// migrations, no sources), and a service started from there by the
// Dockerfile's own ENTRYPOINT command (plain node: no tsx, no loader flags;
// the mesh's heap flags) answers grpc.health.v1 SERVING on its TLS port and
// on its plaintext health port, through the compiled health check too. There
// is no Docker engine here, so the Dockerfile is also read for what cannot
// be run: its base images are the Node.js 24 release CI tests.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureDevelopmentCertificates } from "@shopmesh/chassis";
import { createClient, createTransport } from "@shopmesh/sdk";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@shopmesh/sdk/health/v1";
import { defaultServiceNodeFlags } from "../src/mesh/local-mesh.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), "compiled-service-"));
const stage = join(scratch, "app");
let child: ChildProcess | undefined;

/** Everything but the repository's own packages, which must come from the stage. */
function linkDependencies(): void {
  const modules = join(stage, "node_modules");
  mkdirSync(join(modules, "@shopmesh"), { recursive: true });
  for (const entry of readdirSync(join(root, "node_modules"))) {
    if (entry === "@shopmesh" || entry.startsWith(".")) continue;
    symlinkSync(join(root, "node_modules", entry), join(modules, entry));
  }
  for (const workspace of ["sdk", "services/chassis", "services/products"]) {
    const { name } = JSON.parse(readFileSync(join(stage, workspace, "package.json"), "utf8")) as { name: string };
    symlinkSync(join(stage, workspace), join(modules, name));
  }
}

/**
 * The Dockerfile's base images (each FROM's image), and the shell command of
 * its ENTRYPOINT (the last one, as Docker takes it; exec form, `sh -c`).
 */
function readDockerfile(): { bases: string[]; entrypointCommand: string } {
  const text = readFileSync(join(root, "Dockerfile"), "utf8");
  const bases = [...text.matchAll(/^FROM\s+(?:--\S+\s+)*(\S+)/gim)].map((match) => match[1]!);
  const entrypoint = [...text.matchAll(/^ENTRYPOINT\s+(\[.*\])\s*$/gim)].at(-1)?.[1];
  if (entrypoint === undefined) throw new Error("the Dockerfile has no one-line ENTRYPOINT in exec form");
  const argv = JSON.parse(entrypoint) as string[];
  if (argv.length !== 3 || argv[0] !== "/bin/sh" || argv[1] !== "-c")
    throw new Error(`the ENTRYPOINT is not ["/bin/sh", "-c", command]: ${entrypoint}`);
  return { bases, entrypointCommand: argv[2]! };
}

/** The Node.js 24 release .ci/run tests on. */
function ciNode24(): string {
  const version = /^node24_version=(\S+)$/m.exec(readFileSync(join(root, ".ci/run"), "utf8"))?.[1];
  if (version === undefined) throw new Error(".ci/run names no node24_version");
  return version;
}

/** The environment of a plain node process, without the loader options the test runner may carry. */
function plainEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _ignored, SHOPMESH_SERVICE_NODE_FLAGS: _unset, ...inherited } = process.env;
  return { ...inherited, ...env };
}

/** A plain node process. */
function plainNode(args: string[], env: Record<string, string>) {
  return spawn(process.execPath, args, { env: plainEnv(env), stdio: ["ignore", "pipe", "pipe"] });
}

/**
 * How the image runs the Dockerfile's ENTRYPOINT command: /bin/sh in the
 * stage as the image's WORKDIR, with only the SERVICE and flags given here
 * (none inherited from the test's own environment), and the `node` that runs
 * these tests first on PATH.
 */
function entrypoint(env: Record<string, string>) {
  const { SERVICE: _inherited, ...base } = plainEnv({ PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}` });
  return {
    args: ["-c", readDockerfile().entrypointCommand],
    options: { cwd: stage, env: { ...base, ...env } },
  };
}

beforeAll(() => {
  const built = spawnSync("npm", ["run", "build"], { cwd: root, encoding: "utf8", timeout: 240_000 });
  expect(built.status, built.stdout + built.stderr).toBe(0);
  const staged = spawnSync(process.execPath, [join(root, "scripts/stage-production.mjs"), stage], {
    encoding: "utf8",
  });
  expect(staged.status, staged.stderr).toBe(0);
  linkDependencies();
}, 300_000);

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill("SIGKILL");
    await once(child, "exit");
  }
  rmSync(scratch, { recursive: true, force: true });
});

describe("the Dockerfile", () => {
  it("builds and runs on the Node.js 24 release CI tests, not on whatever 24 is newest", () => {
    expect(readDockerfile().bases).toEqual([`node:${ciNode24()}-slim`, `node:${ciNode24()}-slim`]);
  });

  it("refuses to start without SERVICE, saying what to set", () => {
    const { args, options } = entrypoint({});
    const run = spawnSync("/bin/sh", args, { ...options, encoding: "utf8", timeout: 30_000 });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain("set SERVICE to users, products, orders or user-orders");
  });

  it("lets SHOPMESH_SERVICE_NODE_FLAGS replace the heap flags, as the mesh's tools do", () => {
    // node prints its own flags instead of starting the service named after them.
    const { args, options } = entrypoint({
      SERVICE: "products",
      SHOPMESH_SERVICE_NODE_FLAGS: "--stack-size=900 -p process.execArgv",
    });
    const run = spawnSync("/bin/sh", args, { ...options, encoding: "utf8", timeout: 30_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain("--stack-size=900");
    expect(run.stdout).not.toContain("--max-semi-space-size");
  });
});

describe("a compiled service", () => {
  it("ships no TypeScript sources in the stage", () => {
    const files = readdirSync(join(stage, "services/products"), { recursive: true }) as string[];
    expect(files.filter((file) => file.endsWith(".ts"))).toEqual([]);
    expect(files).toContain(join("dist", "main.js"));
  });

  it("starts by the image's ENTRYPOINT with the mesh's heap flags, applies its migrations and answers SERVING", {
    timeout: 60_000,
  }, async () => {
    const tls = ensureDevelopmentCertificates(join(scratch, "tls"), ["products"]);
    const identity = tls.identities.products!;
    const env = {
      HOST: "127.0.0.1",
      PORT: "0",
      HEALTH_PORT: "0",
      METRICS_PORT: "off",
      DEVELOPMENT_MODE: "on",
      DATA_DIR: join(scratch, "data"),
      TLS_CERT: identity.certFile,
      TLS_KEY: identity.keyFile,
      TLS_CA: identity.caFile,
    };
    const { args, options } = entrypoint({ ...env, SERVICE: "products" });
    const service = spawn("/bin/sh", args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
    child = service;
    let stderr = "";
    service.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const ready = await new Promise<{ port: number; healthPort: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready in time\n${stderr}`)), 30_000);
      service.once("exit", (code) => reject(new Error(`exited ${code}\n${stderr}`)));
      createInterface({ input: service.stdout! }).on("line", (line) => {
        const entry = JSON.parse(line) as { msg?: string; port: number; healthPort: number };
        if (entry.msg !== "ready") return;
        clearTimeout(timer);
        resolve(entry);
      });
    });

    // The shell exec'd node itself (so signals reach it), with the mesh's heap flags for the image's
    // Node.js release before the entry file.
    const argv = readFileSync(`/proc/${service.pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    expect(argv.slice(1)).toEqual([...defaultServiceNodeFlags(ciNode24()), "services/products/dist/main.js"]);

    // Its own database, migrated from the staged drizzle/ folder.
    expect(existsSync(join(scratch, "data", "products.sqlite"))).toBe(true);
    const secure = createTransport({
      target: `127.0.0.1:${ready.port}`,
      tls: { ca: readFileSync(identity.caFile), service: "products" },
    });
    const plaintext = createTransport({ target: `127.0.0.1:${ready.healthPort}` });
    try {
      const overTls = await createClient(Health, secure).check({ service: "shopmesh.products.v1.ProductsService" });
      expect(overTls.status).toBe(ServingStatus.SERVING);
      const onHealthPort = await createClient(Health, plaintext).check({});
      expect(onHealthPort.status).toBe(ServingStatus.SERVING);
    } finally {
      secure.close();
      plaintext.close();
    }

    const probe = plainNode([join(stage, "services/chassis/dist/health-check.js")], {
      HEALTH_PORT: String(ready.healthPort),
    });
    let output = "";
    probe.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    const [probeCode] = await once(probe, "exit");
    expect(output).toContain("SERVING");
    expect(probeCode).toBe(0);

    service.kill("SIGTERM");
    const [code] = await once(service, "exit");
    expect(code).toBe(0);
  });
});
