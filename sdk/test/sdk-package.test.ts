// The SDK as a stranger gets it, following README.md's "Use the SDK from
// another TypeScript project" to the letter: packed by sdk/scripts/pack.mjs
// (`npm run pack:sdk`), checked by arethetypeswrong, installed from the
// tarball into a project made by the README's commands, and the README's own
// tsconfig.json and src/index.ts type-checked by TypeScript 5 and run on plain
// Node against live users and products services. A strict consumer in the
// same project checks both transports, and that wrong code does not compile.
//
// The README's blocks are read by their `<!-- sdk-consumer: ... -->` markers,
// so the README and this test cannot drift. Its commands run as written with
// two rewrites: the tarball path becomes the one just packed, and each
// `npm install` gets --no-audit --no-fund --prefer-offline to stay quick.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { demoAccounts } from "@shopmesh/cli";
import { adminToken, TestMesh } from "../../test/support/mesh.js";

const root = resolve(import.meta.dirname, "../..");
const readme = readFileSync(join(root, "README.md"), "utf8");

// npm run sets these for the repository; a nested npm must not inherit them.
const env = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => !/^npm_(package_|lifecycle_|config_local_prefix$)/i.test(key)),
);

let scratch: string;
let project: string;
let tarball: string;
let installOutput = "";
let mesh: TestMesh | undefined;
// A test that times out leaves its child running; afterAll ends it before
// removing the files it may still write.
const running = new Set<ChildProcess>();

// tsc loads the SDK's declarations, grpc-js' and Node's: seconds alone, far
// more on a busy machine.
const compileTimeout = 180_000;

interface Run {
  status: number | null;
  output: string;
}

function run(command: string, args: string[], cwd: string, extraEnv: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    // The timeout turns a hung child into a failure with its output.
    const child = spawn(command, args, {
      cwd,
      env: { ...env, ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: compileTimeout,
    });
    running.add(child);
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.on("error", (error) => {
      running.delete(child);
      reject(error);
    });
    child.on("close", (status) => {
      running.delete(child);
      resolvePromise({ status, output });
    });
  });
}

async function mustRun(command: string, args: string[], cwd: string): Promise<string> {
  const result = await run(command, args, cwd);
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(" ")} exited with ${result.status}:\n${result.output}`);
  return result.output;
}

/** The fenced block right after `<!-- sdk-consumer: <name> -->` in README.md. */
function readmeBlock(name: string): string {
  const marker = `<!-- sdk-consumer: ${name} -->\n`;
  const at = readme.indexOf(marker);
  if (at < 0) throw new Error(`README.md has no block marked "${marker.trim()}"`);
  const block = /^```\w*\n([\s\S]*?)^```$/m.exec(readme.slice(at + marker.length));
  if (block?.index !== 0) throw new Error(`"${marker.trim()}" in README.md is not followed by a fenced block`);
  return block[1]!;
}

/** A README command block as argument lists, one per line, comments dropped. */
function readmeCommands(name: string): string[][] {
  return readmeBlock(name)
    .split("\n")
    .map((line) => line.replace(/\s+#.*$/, "").trim())
    .filter((line) => line !== "")
    .map((line) => {
      // Split on spaces is faithful only without shell syntax.
      if (/["'`$&|;<>\\]/.test(line)) throw new Error(`README command needs a shell: ${line}`);
      return line.split(/\s+/);
    });
}

/** Every package installed under dir/node_modules, nested ones included. */
function installedPackages(dir: string): { name: string; scripts: Record<string, string> }[] {
  const modules = join(dir, "node_modules");
  if (!existsSync(modules)) return [];
  const folders = readdirSync(modules)
    .filter((entry) => !entry.startsWith("."))
    .flatMap((entry) =>
      entry.startsWith("@") ? readdirSync(join(modules, entry)).map((scoped) => join(entry, scoped)) : [entry],
    );
  return folders.flatMap((folder) => {
    const path = join(modules, folder);
    const manifest = JSON.parse(readFileSync(join(path, "package.json"), "utf8")) as {
      name: string;
      scripts?: Record<string, string>;
    };
    return [{ name: manifest.name, scripts: manifest.scripts ?? {} }, ...installedPackages(path)];
  });
}

// A second consumer in the same project, stricter than the README's, that
// uses both transports and the message types.
const strictConsumer = `
import { readFileSync } from "node:fs";
import { createClient, createTransport, ConnectError, Code, type TransportKind } from "@shopmesh/sdk";
import { Health, HealthCheckResponse_ServingStatus } from "@shopmesh/sdk/health/v1";
import { ProductsService, type Product } from "@shopmesh/sdk/products/v1";

const target = process.argv[2] ?? "127.0.0.1:50052";
const ca = readFileSync(process.argv[3] ?? "data/tls/ca.pem");

function describe(product: Product | undefined): string {
  return product ? \`\${product.name} \${product.price?.minorUnits ?? 0n} \${product.price?.currencyCode ?? ""}\` : "none";
}

for (const kind of ["grpc-js", "connect-node"] satisfies TransportKind[]) {
  const transport = createTransport({ target, kind, tls: { ca, service: "products" } });
  try {
    const health = createClient(Health, transport);
    const { status } = await health.check({ service: "" }, { timeoutMs: 5000 });
    console.log(\`\${kind} health \${HealthCheckResponse_ServingStatus[status]}\`);
    // "p1" is no product id: the error arrives as a ConnectError.
    const products = createClient(ProductsService, transport);
    try {
      console.log(describe((await products.getProduct({ productId: "p1" }, { timeoutMs: 5000 })).product));
    } catch (error) {
      if (!(error instanceof ConnectError)) throw error;
      console.log(\`\${kind} products \${Code[error.code]}\`);
    }
  } finally {
    transport.close();
  }
}
`;

// Each marked line must fail to compile; if the SDK's types were \`any\`, or
// its plumbing were public, the unused @ts-expect-error directives would fail
// the build instead.
const typeErrors = `
import { createClient, createTransport } from "@shopmesh/sdk";
import type { Product } from "@shopmesh/sdk/products/v1";
import { UsersService, type User } from "@shopmesh/sdk/users/v1";
// @ts-expect-error Header and metadata plumbing is not part of the public API.
import { headersToMetadata, methodPath } from "@shopmesh/sdk";
// @ts-expect-error The chassis' internal entry point is not published.
import * as internal from "@shopmesh/sdk/internal";

export const plumbing: unknown[] = [headersToMetadata, methodPath, internal];

export function title(product: Product): unknown {
  // @ts-expect-error Product has a name, no title.
  return product.title;
}

export function firstName(user: User): unknown {
  // @ts-expect-error The contract says display_name; first_name does not exist.
  return user.firstName;
}

export function wrongRequest(): unknown {
  const users = createClient(UsersService, createTransport({ target: "127.0.0.1:1" }));
  // @ts-expect-error user_id is a string.
  return users.getUser({ userId: 42 });
}
`;

async function startMesh(): Promise<TestMesh> {
  const started = await TestMesh.start(["users", "products"]);
  mesh = started;
  // The account the README's example signs in with, as npm start seeds it.
  const { alice } = demoAccounts;
  await started
    .client("users")
    .signUp({ email: alice.email, password: alice.password, displayName: alice.displayName });
  await started.client("products", await adminToken(started)).createProduct({
    name: "Ceramic mug",
    description: "350 ml, dishwasher safe.",
    price: { currencyCode: "EUR", minorUnits: 1200n },
  });
  return started;
}

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "shopmesh-sdk-package-"));
  project = join(scratch, "my-app");
  // Not beside the build: services that start on a CPU busy with tsc can
  // miss their readiness deadline.
  await startMesh();
  const packOutput = await mustRun(
    process.execPath,
    [join(root, "sdk/scripts/pack.mjs"), "--out-dir", join(scratch, "build"), "--pack-destination", scratch],
    root,
  );
  tarball = packOutput.trim().split("\n").at(-1)!;

  mkdirSync(project);
  let tarballArguments = 0;
  for (const [command, ...args] of readmeCommands("setup")) {
    const rewritten = args.map((arg) => {
      if (!/^\.\.\/shopmesh\/dist\/shopmesh-sdk-.*\.tgz$/.test(arg)) return arg;
      expect(basename(arg), "the README installs the tarball npm run pack:sdk writes").toBe(basename(tarball));
      tarballArguments++;
      return tarball;
    });
    if (command === "npm" && args[0] === "install") rewritten.push("--no-audit", "--no-fund", "--prefer-offline");
    installOutput += await mustRun(command!, rewritten, project);
  }
  expect(tarballArguments, "the README's setup installs the packed tarball").toBe(1);

  writeFileSync(join(project, "tsconfig.json"), readmeBlock("tsconfig.json"));
  mkdirSync(join(project, "src"));
  writeFileSync(join(project, "src/index.ts"), readmeBlock("src/index.ts"));
  // Compiled with it by the README's `npx tsc`, not run: it needs the application's OpenTelemetry setup.
  writeFileSync(join(project, "src/traced.ts"), readmeBlock("src/traced.ts"));

  mkdirSync(join(project, "strict"));
  writeFileSync(
    join(project, "strict/tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        noUncheckedIndexedAccess: true,
        verbatimModuleSyntax: true,
        // The README's own compile checks the SDK's declarations.
        skipLibCheck: true,
        types: ["node"],
        rootDir: ".",
        outDir: "../out-strict",
      },
      include: ["."],
    }),
  );
  writeFileSync(join(project, "strict/consumer.ts"), strictConsumer);
  writeFileSync(join(project, "strict/type-errors.ts"), typeErrors);
}, 300_000);

afterAll(async () => {
  await Promise.all(
    [...running].map((child) => {
      const closed = once(child, "close");
      child.kill("SIGKILL");
      return closed;
    }),
  );
  await mesh?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

it(
  "passes arethetypeswrong as an ESM-only package",
  async () => {
    // esm-only leaves out node10 (ignores "exports", so no subpath resolves) and
    // require() from CommonJS, which TypeScript and older Node refuse for an ES
    // module; both are outside what the SDK supports.
    const attw = join(root, "node_modules/.bin/attw");
    const result = await run(
      attw,
      [tarball, "--profile", "esm-only", "--no-definitely-typed", "--format", "ascii", "--no-color"],
      scratch,
    );
    expect(result.status, result.output).toBe(0);
  },
  compileTimeout,
);

it("publishes an ES module with its changelog, peer dependencies and no internal entry point", () => {
  const installed = join(project, "node_modules/@shopmesh/sdk");
  const manifest = JSON.parse(readFileSync(join(installed, "package.json"), "utf8")) as Record<
    string,
    Record<string, unknown>
  >;
  expect(manifest.type).toBe("module");
  expect(Object.keys(manifest.exports!)).not.toContain("./internal");
  // The application's messages, ConnectError, channel credentials and trace
  // context must be the SDK's own copies, so these come from the application.
  expect(Object.keys(manifest.peerDependencies!).sort()).toEqual([
    "@bufbuild/protobuf",
    "@connectrpc/connect",
    "@grpc/grpc-js",
    "@opentelemetry/api",
  ]);
  expect(Object.keys(manifest.dependencies!)).toEqual(["@connectrpc/connect-node"]);
  expect(readFileSync(join(installed, "CHANGELOG.md"), "utf8")).toContain(`## ${String(manifest.version)}`);
});

it("installs by the README's commands without install-script warnings, one copy of each shared library", () => {
  expect(installOutput).not.toMatch(/install.scripts|allowScripts/i);
  const packages = installedPackages(project);
  // protobufjs (via @grpc/grpc-js and @grpc/proto-loader) is the one install
  // script, and the README's allowScripts entry decides it; nothing pulls in
  // esbuild or anything else that runs code at install time.
  const withScripts = packages.filter(({ scripts }) => scripts.preinstall ?? scripts.install ?? scripts.postinstall);
  expect(withScripts.map(({ name }) => name)).toEqual(["protobufjs"]);
  for (const shared of ["@bufbuild/protobuf", "@connectrpc/connect", "@grpc/grpc-js", "@opentelemetry/api"]) {
    expect(
      packages.filter(({ name }) => name === shared),
      shared,
    ).toHaveLength(1);
  }
  const typescript = JSON.parse(readFileSync(join(project, "node_modules/typescript/package.json"), "utf8")) as {
    version: string;
  };
  expect(typescript.version).toMatch(/^5\./);
});

it(
  "type-checks and compiles the README's example with the README's tsconfig.json",
  async () => {
    const [compile] = readmeCommands("run");
    const result = await run(compile![0]!, compile!.slice(1), project);
    expect(result.output).toBe("");
    expect(result.status).toBe(0);
  },
  compileTimeout,
);

it("runs the README's example against live users and products services", async () => {
  const [, start] = readmeCommands("run");
  const result = await run(start![0]!, start!.slice(1), project, {
    USERS_TARGET: mesh!.address("users"),
    PRODUCTS_TARGET: mesh!.address("products"),
    SHOPMESH_CA: mesh!.certificates!.caFile,
  });
  expect(result.status, result.output).toBe(0);
  expect(result.output.trim().split("\n")).toEqual([
    "Ceramic mug: 1200 EUR",
    "InvalidArgument: product_id: is not a valid id",
  ]);
});

it(
  "type-checks the README's example under moduleResolution bundler",
  async () => {
    const tsconfig = JSON.parse(readmeBlock("tsconfig.json")) as { compilerOptions: Record<string, unknown> };
    // The declarations were checked by the compile above; here only resolution differs.
    tsconfig.compilerOptions = {
      ...tsconfig.compilerOptions,
      module: "esnext",
      moduleResolution: "bundler",
      noEmit: true,
      skipLibCheck: true,
    };
    writeFileSync(join(project, "tsconfig.bundler.json"), JSON.stringify(tsconfig));
    const result = await run(join(project, "node_modules/.bin/tsc"), ["-p", "tsconfig.bundler.json"], project);
    expect(result.output).toBe("");
    expect(result.status).toBe(0);
  },
  compileTimeout,
);

it(
  "refuses the README's example in the CommonJS project npm init -y makes",
  async () => {
    // The README's own project, minus `"type": "module"`.
    const commonjs = join(project, "commonjs");
    mkdirSync(join(commonjs, "src"), { recursive: true });
    const { type, ...manifest } = JSON.parse(readFileSync(join(project, "package.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(type).toBe("module");
    writeFileSync(join(commonjs, "package.json"), JSON.stringify(manifest));
    writeFileSync(join(commonjs, "tsconfig.json"), readmeBlock("tsconfig.json"));
    writeFileSync(join(commonjs, "src/index.ts"), readmeBlock("src/index.ts"));
    const result = await run(
      join(project, "node_modules/.bin/tsc"),
      ["-p", "tsconfig.json", "--noEmit", "--skipLibCheck"],
      commonjs,
    );
    expect(result.status).not.toBe(0);
    expect(result.output).toContain("error TS1309");
  },
  compileTimeout,
);

it(
  "type-checks a strict NodeNext consumer against the packed declarations",
  async () => {
    // Emits out-strict/ for the next test as well.
    const result = await run(join(project, "node_modules/.bin/tsc"), ["-p", "strict/tsconfig.json"], project);
    expect(result.output).toBe("");
    expect(result.status).toBe(0);
  },
  compileTimeout,
);

it("runs on plain Node against a live server over both transports", async () => {
  const result = await run(
    process.execPath,
    ["out-strict/consumer.js", mesh!.address("products"), mesh!.certificates!.caFile],
    project,
  );
  expect(result.status, result.output).toBe(0);
  expect(result.output.trim().split("\n")).toEqual([
    "grpc-js health SERVING",
    "grpc-js products InvalidArgument",
    "connect-node health SERVING",
    "connect-node products InvalidArgument",
  ]);
});
