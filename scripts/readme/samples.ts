// `npm run docs:samples`: produces the README's sample outputs by running the
// commands, and writes them between the README's sample markers
// (scripts/readme/markers.ts). `--check` writes nothing and exits 1 when the
// README differs. The rename story ("Why typed contracts") is played in a
// scratch copy of the checkout, never in the real tree: display_name becomes
// first_name in users.proto, then buf breaking, buf generate and tsc run there.
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { readSamples, writeSamples } from "./markers.js";
import { scratchCopy } from "./scratch-copy.js";

export const repoRoot = resolve(fileURLToPath(new URL("../..", import.meta.url)));
export const readmePath = join(repoRoot, "README.md");

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

// Without GIT_DIR and the like (set when this runs from a git hook), git and
// buf look at the folders they are given.
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("GIT_")));

function run(command: string, args: string[], cwd: string): Promise<Ran> {
  const env = { ...baseEnv, PATH: `${join(cwd, "node_modules", ".bin")}${delimiter}${process.env.PATH ?? ""}` };
  return new Promise((done, fail) => {
    execFile(command, args, { cwd, env, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== "number") return fail(error);
      done({ code: typeof error?.code === "number" ? error.code : 0, stdout, stderr });
    });
  });
}

function expectExit(what: string, ran: Ran, codes: number[]): void {
  if (!codes.includes(ran.code)) {
    throw new Error(`${what} exited with ${ran.code}, expected ${codes.join(" or ")}:\n${ran.stdout}${ran.stderr}`);
  }
}

/** The rename of users' display_name to first_name, as buf breaking and tsc report it. */
async function renameSamples(root: string): Promise<Map<string, string>> {
  const copy = await scratchCopy(root);
  try {
    const proto = join(copy.dir, "proto/shopmesh/users/v1/users.proto");
    const text = readFileSync(proto, "utf8");
    const field = "string display_name = 3;";
    if (text.split(field).length !== 3)
      throw new Error(`users.proto should declare "${field}" twice (User, SignUpRequest)`);
    writeFileSync(proto, text.replaceAll(field, "string first_name = 3;"));

    const [breaking, generate] = await Promise.all([
      run(join(copy.dir, "node_modules/.bin/buf"), ["breaking", "--against", root], copy.dir),
      run(join(copy.dir, "node_modules/.bin/buf"), ["generate"], copy.dir),
    ]);
    expectExit("buf breaking", breaking, [100]);
    expectExit("buf generate", generate, [0]);
    const typecheck = await run(join(copy.dir, "node_modules/.bin/tsc"), ["--noEmit", "-p", "tsconfig.json"], copy.dir);
    expectExit("tsc", typecheck, [1, 2]);
    if (!typecheck.stdout.includes("error TS"))
      throw new Error(`tsc failed without a type error:\n${typecheck.stdout}${typecheck.stderr}`);
    return new Map([
      ["breaking-rename", breaking.stdout],
      ["typecheck-rename", typecheck.stdout],
    ]);
  } finally {
    copy.remove();
  }
}

/** Every generated sample, by the name of its README marker. */
export function renderSamples(root = repoRoot): Promise<Map<string, string>> {
  return renameSamples(root);
}

/** The samples whose README text differs from what the commands print now. */
export function staleSamples(readme: string, samples: ReadonlyMap<string, string>): string[] {
  const present = readSamples(readme);
  return [...samples].filter(([name, text]) => present.get(name) !== text).map(([name]) => name);
}

async function main(): Promise<void> {
  const check = process.argv.includes("--check");
  const samples = await renderSamples();
  const readme = readFileSync(readmePath, "utf8");
  const updated = writeSamples(readme, samples);
  if (check) {
    const stale = staleSamples(readme, samples);
    if (stale.length > 0) {
      console.error(`README.md samples out of date: ${stale.join(", ")}; run npm run docs:samples`);
      process.exit(1);
    }
    console.log(`README.md samples up to date: ${[...samples.keys()].join(", ")}`);
    return;
  }
  if (updated === readme) console.log("README.md samples already up to date");
  else {
    writeFileSync(readmePath, updated);
    console.log(`README.md samples rewritten: ${staleSamples(readme, samples).join(", ")}`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
