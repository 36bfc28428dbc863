// Builds the publishable SDK: JavaScript and declarations for sdk/src and the
// generated code it re-exports, a package.json, a README and the changelog,
// so that `npm pack sdk/dist` makes an installable tarball (sdk/scripts/pack.mjs
// does both).
//
//   node sdk/scripts/build.mjs [--out-dir <dir>]     (default: sdk/dist)
//
// The published manifest maps the repository's entry points to the same
// compiled files, relative to the package's own root, except the chassis'
// "./internal" entry, which is not part of the public API.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const sdk = resolve(fileURLToPath(import.meta.url), "../..");
const tsc = resolve(sdk, "../node_modules/.bin/tsc");
const { values } = parseArgs({ options: { "out-dir": { type: "string" } } });
const outDir = resolve(values["out-dir"] ?? join(sdk, "dist"));

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
// rootDir is the repository root (see tsconfig.build.json): sdk/src/x.ts
// becomes <out>/sdk/src/x.js and gen/... becomes <out>/gen/...
// One plain compilation into outDir: no build-mode bookkeeping in the package.
const compiled = spawnSync(
  tsc,
  ["-p", join(sdk, "tsconfig.build.json"), "--outDir", outDir, "--composite", "false", "--incremental", "false"],
  { stdio: "inherit" },
);
if (compiled.status !== 0) {
  console.error("sdk build: tsc failed");
  process.exit(compiled.status ?? 1);
}

const source = JSON.parse(readFileSync(join(sdk, "package.json"), "utf8"));
/** `./dist/sdk/src/users-v1.js` becomes `./sdk/src/users-v1` (without extension), inside the package. */
const compiledPath = (path) => path.replace(/^\.\/dist\//, "./").replace(/\.js$/, "");
const exports = Object.fromEntries(
  Object.entries(source.exports)
    .filter(([entry]) => entry !== "./internal")
    .map(([entry, { default: path }]) => [
      entry,
      { types: `${compiledPath(path)}.d.ts`, default: `${compiledPath(path)}.js` },
    ]),
);
const manifest = {
  name: source.name,
  version: source.version,
  description: source.description,
  license: source.license,
  type: "module",
  exports,
  types: exports["."].types,
  sideEffects: false,
  engines: source.engines,
  dependencies: source.dependencies,
  peerDependencies: source.peerDependencies,
};
writeFileSync(join(outDir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
writeFileSync(join(outDir, "README.md"), readme(manifest));
copyFileSync(join(sdk, "CHANGELOG.md"), join(outDir, "CHANGELOG.md"));
console.log(`sdk build: ${manifest.name}@${manifest.version} in ${outDir}`);

function readme({ name, description, engines }) {
  const entries = Object.keys(exports)
    .filter((entry) => entry !== ".")
    .map((entry) => `- \`${name}${entry.slice(1)}\``)
    .join("\n");
  return `# ${name}

${description}

An ES module for Node.js ${engines.node}. The consuming project needs
\`"type": "module"\` for the top-level \`await\` below, and TypeScript 5.x with
\`"module": "nodenext"\` (or \`"moduleResolution": "bundler"\` behind a bundler).
\`@bufbuild/protobuf\`, \`@connectrpc/connect\`, \`@grpc/grpc-js\` and
\`@opentelemetry/api\` are peer dependencies: the application and the SDK
must share one copy of each (for \`instanceof ConnectError\`, message types,
channel credentials and the active trace context); npm 7 or later installs
them with the SDK.

\`\`\`ts
import { createClient, createTransport, ConnectError, Code } from "${name}";
import { ProductsService } from "${name}/products/v1";

const transport = createTransport({ target: "127.0.0.1:50052" }); // kind: "grpc-js" (default) or "connect-node"
const products = createClient(ProductsService, transport);
try {
  const { product } = await products.getProduct({ productId: "..." }, { timeoutMs: 500 });
  console.log(product?.name);
} catch (error) {
  if (error instanceof ConnectError && error.code === Code.NotFound) console.log("no such product");
  else throw error;
} finally {
  transport.close();
}
\`\`\`

Pass \`token\` to \`createTransport\` to send a bearer token with every call,
and \`interceptors: [tracingInterceptor()]\` to carry the application's
active OpenTelemetry trace to the services (\`traceparent\`; nothing is sent
until the application registers an OpenTelemetry SDK).
Service descriptors and message types, one entry point per contract package:

${entries}
`;
}
