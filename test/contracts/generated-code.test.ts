// The committed gen/ tree must be exactly what `buf generate` makes from
// proto/ today: same files, same bytes. Otherwise a contract changed and
// nobody regenerated, and the code compiles against yesterday's contract.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join, relative, resolve } from "node:path";
import { afterAll, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../..");
const out = mkdtempSync(join(tmpdir(), "shopmesh-generate-"));

afterAll(() => rmSync(out, { recursive: true, force: true }));

/** Every file under `dir`, as sorted paths relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

it("gen/ matches what buf generate makes from proto/", () => {
  // buf.gen.yaml writes `out: gen`; -o puts that under the scratch directory.
  // protoc-gen-es is a local plugin, found on PATH.
  const result = spawnSync(join(root, "node_modules/.bin/buf"), ["generate", "-o", out], {
    cwd: root,
    encoding: "utf8",
    env: { ...process.env, PATH: `${join(root, "node_modules/.bin")}${delimiter}${process.env.PATH ?? ""}` },
  });
  expect(result.status, `buf generate failed:\n${result.stderr}`).toBe(0);

  const committed = join(root, "gen");
  const fresh = join(out, "gen");
  const committedFiles = filesUnder(committed);
  const freshFiles = filesUnder(fresh);
  const problems = [
    ...freshFiles.filter((file) => !committedFiles.includes(file)).map((file) => `missing from gen/: ${file}`),
    ...committedFiles.filter((file) => !freshFiles.includes(file)).map((file) => `no longer generated: gen/${file}`),
    ...freshFiles
      .filter((file) => committedFiles.includes(file))
      .filter((file) => !readFileSync(join(fresh, file)).equals(readFileSync(join(committed, file))))
      .map((file) => `differs: gen/${file}`),
  ];
  expect(freshFiles.length).toBeGreaterThan(0);
  expect(problems, `gen/ is stale: run npm run generate\n${problems.join("\n")}`).toEqual([]);
});
