// Lays out what runs in production, from a built repository (`npm run build`):
// the compiled workspaces that the services need (their package.json, dist/
// and drizzle migrations, no sources, tests or declarations), a root
// package.json naming them as workspaces, and the lockfile, so that
// `npm install --omit=dev` in the stage installs exactly their runtime
// dependencies. The Dockerfile and tools/cli/test/compiled-service.test.ts
// both use it.
//
//   node scripts/stage-production.mjs <stage dir>
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const productionWorkspaces = [
  "sdk",
  "services/chassis",
  "services/users",
  "services/products",
  "services/orders",
  "services/user-orders",
];

const root = resolve(fileURLToPath(import.meta.url), "../..");
const stage = process.argv[2];
if (!stage) {
  console.error("usage: node scripts/stage-production.mjs <stage dir>");
  process.exit(2);
}
const out = resolve(stage);
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const runtimeFile = (path) => !path.endsWith(".d.ts") && !path.endsWith(".tsbuildinfo");
for (const workspace of productionWorkspaces) {
  const from = join(root, workspace);
  const to = join(out, workspace);
  if (!existsSync(join(from, "dist"))) {
    console.error(`stage: ${workspace}/dist is missing; run npm run build first`);
    process.exit(1);
  }
  mkdirSync(to, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(from, "package.json"), "utf8"));
  // Scripts and development dependencies belong to the repository.
  delete manifest.scripts;
  delete manifest.devDependencies;
  writeFileSync(join(to, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  cpSync(join(from, "dist"), join(to, "dist"), { recursive: true, filter: runtimeFile });
  if (existsSync(join(from, "drizzle"))) cpSync(join(from, "drizzle"), join(to, "drizzle"), { recursive: true });
}
const rootManifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const staged = {
  name: rootManifest.name,
  version: rootManifest.version,
  private: true,
  type: "module",
  license: rootManifest.license,
  engines: rootManifest.engines,
  workspaces: productionWorkspaces,
  dependencies: rootManifest.dependencies,
  allowScripts: rootManifest.allowScripts,
};
writeFileSync(join(out, "package.json"), `${JSON.stringify(staged, null, 2)}\n`);
cpSync(join(root, "package-lock.json"), join(out, "package-lock.json"));
console.log(`stage: ${productionWorkspaces.join(", ")} in ${out}`);
