// scripts/check-native.mjs (npm install's postinstall, first in npm test) run
// as a process: it passes under the Node.js that runs the tests, and under a
// Node.js of another ABI it fails with the command that fixes it.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const checker = fileURLToPath(new URL("../../scripts/check-native.mjs", import.meta.url));
const root = fileURLToPath(new URL("../..", import.meta.url));

function runChecker(node: string) {
  const run = spawnSync(node, [checker], { cwd: root, encoding: "utf8", timeout: 60_000 });
  return { status: run.status, stderr: run.stderr };
}

/**
 * Another Node.js to run the checker with (CI's Node 24 pass names the
 * machine's Node 20 here), if it exists and its ABI differs from this one's.
 */
function otherAbiNode(): { node: string; modules: string } | undefined {
  const node = process.env.SHOPMESH_OTHER_NODE;
  if (!node) return undefined;
  const probe = spawnSync(node, ["-p", "process.versions.modules"], { encoding: "utf8" });
  const modules = probe.stdout?.trim();
  if (probe.status !== 0 || !modules || modules === process.versions.modules) return undefined;
  return { node, modules };
}

const other = otherAbiNode();

describe("check-native", () => {
  it("passes under the Node.js that runs the tests", () => {
    const run = runChecker(process.execPath);
    expect(run.stderr).toContain(`better-sqlite3 works under Node.js ${process.versions.node}`);
    expect(run.status).toBe(0);
  });

  // Needs a second Node.js whose NODE_MODULE_VERSION differs; SHOPMESH_OTHER_NODE names it (.ci/run sets it).
  it.skipIf(other === undefined)(
    "fails under a Node.js of another ABI, naming both versions and the rebuild command",
    () => {
      const run = runChecker(other!.node);
      expect(run.status).toBe(1);
      expect(run.stderr).toContain(`was built for another Node.js (NODE_MODULE_VERSION ${process.versions.modules})`);
      expect(run.stderr).toContain(`(NODE_MODULE_VERSION ${other!.modules})`);
      expect(run.stderr).toMatch(/npm_config_nodedir=\S+ npm rebuild better-sqlite3/);
      expect(run.stderr).not.toMatch(/^\s+at /m);
    },
  );
});
