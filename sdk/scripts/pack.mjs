// Builds the SDK and packs it into an installable tarball, outside the
// sources so that no tarball lands untracked in the repository:
//
//   node sdk/scripts/pack.mjs [--out-dir <dir>] [--pack-destination <dir>]
//
// --out-dir is the build (default: sdk/dist), --pack-destination where the
// tarball goes (default: dist/ at the repository root; both are ignored by
// git). Prints the tarball's absolute path as the last line.
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const sdk = resolve(fileURLToPath(import.meta.url), "../..");
const { values } = parseArgs({ options: { "out-dir": { type: "string" }, "pack-destination": { type: "string" } } });
const outDir = resolve(values["out-dir"] ?? join(sdk, "dist"));
const destination = resolve(values["pack-destination"] ?? join(sdk, "../dist"));

const built = spawnSync(process.execPath, [join(sdk, "scripts/build.mjs"), "--out-dir", outDir], { stdio: "inherit" });
if (built.status !== 0) process.exit(built.status ?? 1);

mkdirSync(destination, { recursive: true });
// `npm run` describes the repository's own package to its scripts; the
// nested npm packs another package and must not read those settings.
const env = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => !/^npm_(package_|lifecycle_|config_local_prefix$)/i.test(key)),
);
const packed = spawnSync("npm", ["pack", outDir, "--pack-destination", destination, "--json", "--loglevel=error"], {
  cwd: destination,
  env,
  encoding: "utf8",
  stdio: ["ignore", "pipe", "inherit"],
});
if (packed.status !== 0) {
  console.error("sdk pack: npm pack failed");
  process.exit(packed.status ?? 1);
}
const [{ filename }] = JSON.parse(packed.stdout);
console.log(join(destination, filename));
