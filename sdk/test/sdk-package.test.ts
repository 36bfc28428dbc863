// The SDK as a stranger gets it: built, packed with npm, installed from the
// tarball into a project outside the workspace, type-checked by a strict
// NodeNext consumer, and run on plain Node against a live server.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { spawnService, type ServiceProcess } from "@shopmesh/chassis";
import { afterAll, beforeAll, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../..");
const tsc = join(root, "node_modules/.bin/tsc");
const typesNodeVersion = (JSON.parse(readFileSync(join(root, "node_modules/@types/node/package.json"), "utf8")) as { version: string }).version;

// npm run sets these for the repository; a nested npm must not inherit them.
const env = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => !/^npm_(package_|lifecycle_|config_local_prefix$)/i.test(key)),
);

let scratch: string;
let consumer: string;
let server: ServiceProcess | undefined;

interface Run {
  status: number | null;
  output: string;
}

function run(command: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.on("error", reject);
    child.on("close", (status) => resolvePromise({ status, output }));
  });
}

async function mustRun(command: string, args: string[], cwd: string): Promise<string> {
  const result = await run(command, args, cwd);
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} exited with ${result.status}:\n${result.output}`);
  return result.output;
}

const consumerSource = `
import { createClient, createTransport, ConnectError, Code, type TransportKind } from "@shopmesh/sdk";
import { Health, HealthCheckResponse_ServingStatus } from "@shopmesh/sdk/health/v1";
import { ProductsService, type Product } from "@shopmesh/sdk/products/v1";

const target = process.argv[2] ?? "127.0.0.1:50052";

function describe(product: Product | undefined): string {
  return product ? \`\${product.name} \${product.price?.minorUnits ?? 0n} \${product.price?.currencyCode ?? ""}\` : "none";
}

for (const kind of ["grpc-js", "connect-node"] satisfies TransportKind[]) {
  const transport = createTransport({ target, kind });
  try {
    const health = createClient(Health, transport);
    const { status } = await health.check({ service: "" }, { timeoutMs: 5000 });
    console.log(\`\${kind} health \${HealthCheckResponse_ServingStatus[status]}\`);
    // The echo server hosts no products: the error arrives as a ConnectError.
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

// Each line below must fail to compile; if the SDK's types were \`any\`, the
// unused @ts-expect-error directives would fail the build instead.
const typeErrorsSource = `
import { createClient, createTransport } from "@shopmesh/sdk";
import type { Product } from "@shopmesh/sdk/products/v1";
import { UsersService, type User } from "@shopmesh/sdk/users/v1";

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

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), "shopmesh-sdk-package-"));
  consumer = join(scratch, "consumer");
  const serverStarted = spawnService({ entry: join(root, "services/chassis/test/support/echo-main.ts") }).then((started) => {
    server = started;
  });

  const build = join(scratch, "build");
  await mustRun(process.execPath, [join(root, "sdk/scripts/build.mjs"), "--out-dir", build], root);
  const packed = JSON.parse(await mustRun("npm", ["pack", build, "--pack-destination", scratch, "--json", "--loglevel=error"], scratch)) as {
    filename: string;
  }[];
  const tarball = join(scratch, packed[0]!.filename);

  mkdirSync(join(consumer, "src"), { recursive: true });
  writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "sdk-consumer", private: true, type: "module" }));
  writeFileSync(
    join(consumer, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        noUncheckedIndexedAccess: true,
        verbatimModuleSyntax: true,
        skipLibCheck: false,
        types: ["node"],
        rootDir: "src",
        outDir: "out",
      },
      include: ["src"],
    }),
  );
  writeFileSync(join(consumer, "src/consumer.ts"), consumerSource);
  writeFileSync(join(consumer, "src/type-errors.ts"), typeErrorsSource);
  await mustRun(
    "npm",
    ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", tarball, `@types/node@${typesNodeVersion}`],
    consumer,
  );
  await serverStarted;
}, 120_000);

afterAll(async () => {
  await server?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

it("type-checks a strict NodeNext consumer against the packed declarations", async () => {
  // Emits out/ for the next test as well.
  const result = await run(tsc, ["-p", "tsconfig.json"], consumer);
  expect(result.output).toBe("");
  expect(result.status).toBe(0);
});

it("runs on plain Node against a live server over both transports", async () => {
  const result = await run(process.execPath, ["out/consumer.js", server!.address], consumer);
  expect(result.status, result.output).toBe(0);
  expect(result.output.trim().split("\n")).toEqual([
    "grpc-js health SERVING",
    "grpc-js products Unimplemented",
    "connect-node health SERVING",
    "connect-node products Unimplemented",
  ]);
});
