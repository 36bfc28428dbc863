// System programs some suites need beyond Node (nats-server, later others):
// where one is missing, those suites are skipped with a one-line reason that
// names the package to install, so that `npm test` passes on a machine that
// has only Node. Where the program must be there (CI, or SHOPMESH_REQUIRE
// names it), a missing one fails the suite instead of skipping it silently.
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";

export interface ProgramOptions {
  /** The Debian/Ubuntu package that installs it, named in the skip reason. */
  debianPackage?: string;
  /** An environment variable that may name the executable instead of PATH. */
  envVariable?: string;
  /** What is skipped without it, for the reason line ("the JetStream tests"). */
  neededFor?: string;
}

export interface OptionalProgram {
  readonly name: string;
  /** The executable, when found. */
  readonly path: string | undefined;
  /** True when it is missing: the argument for describe.skipIf / it.skipIf. */
  readonly missing: boolean;
  /** Why the suites that need it are skipped; undefined when it is there. */
  readonly skipReason: string | undefined;
}

// Debian puts servers in the sbin folders, which an ordinary user's PATH may
// not name: a program found only there is reported, not used, so that PATH
// alone decides what the tests run.
const sbinDirs = ["/usr/local/sbin", "/usr/sbin", "/sbin"];
const reported = new Set<string>();

/**
 * Looks `name` up and tells whether the suites that need it can run. When it
 * is missing and required (see {@link isRequired}) this throws, so the test
 * file fails; otherwise it prints the skip reason once and returns it.
 */
export function requireProgram(
  name: string,
  options: ProgramOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): OptionalProgram {
  const path = findProgram(name, options, env);
  if (path) return { name, path, missing: false, skipReason: undefined };

  const what = options.neededFor ?? "the tests that need it";
  const remedy = howToGet(name, options);
  if (isRequired(name, env)) {
    throw new Error(
      `${name} is required here (${requiredBecause(env)}) but not on PATH, and ${what} may not be skipped. To fix: ${remedy}`,
    );
  }
  const skipReason = `${name} is not on PATH: skipping ${what}. To run them: ${remedy}`;
  if (!reported.has(name)) {
    reported.add(name);
    console.warn(`skipped: ${skipReason}`);
  }
  return { name, path: undefined, missing: true, skipReason };
}

/**
 * A missing program fails instead of skipping when SHOPMESH_REQUIRE lists it
 * (comma-separated, or `all`), or when CI is set and SHOPMESH_REQUIRE is not:
 * CI installs every optional program, so a skip there hides a broken install.
 * SHOPMESH_REQUIRE=none allows every skip, CI or not.
 */
export function isRequired(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const listed = env.SHOPMESH_REQUIRE?.trim();
  if (listed) {
    const names = listed.split(",").map((entry) => entry.trim());
    return names.includes("all") || names.includes(name);
  }
  return isCi(env);
}

function howToGet(name: string, options: ProgramOptions): string {
  const offPath = sbinDirs.map((dir) => join(dir, name)).find(isExecutable);
  if (offPath) return `add ${dirname(offPath)} to PATH (${name} is installed there).`;
  const install = options.debianPackage
    ? `apt-get install ${options.debianPackage} (Debian/Ubuntu)`
    : `install ${name}`;
  return options.envVariable ? `${install}, or set ${options.envVariable} to its path.` : `${install}.`;
}

/** Why a missing program is required here, for the error: SHOPMESH_REQUIRE or CI. */
export function requiredBecause(env: NodeJS.ProcessEnv): string {
  return env.SHOPMESH_REQUIRE?.trim() ? `SHOPMESH_REQUIRE=${env.SHOPMESH_REQUIRE.trim()}` : `CI=${env.CI ?? ""}`;
}

function isCi(env: NodeJS.ProcessEnv): boolean {
  const value = env.CI?.trim().toLowerCase();
  return value !== undefined && value !== "" && value !== "0" && value !== "false";
}

/** The executable: the environment variable's value, else the first match on PATH. */
export function findProgram(
  name: string,
  options: ProgramOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const named = options.envVariable ? env[options.envVariable]?.trim() : undefined;
  if (named) {
    if (!isExecutable(named)) throw new Error(`${options.envVariable}=${named} is not an executable file`);
    return named;
  }
  return (env.PATH ?? "")
    .split(delimiter)
    .filter(Boolean)
    .map((dir) => join(dir, name))
    .find(isExecutable);
}

function isExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
