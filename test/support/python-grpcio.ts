// A Python 3 that can import grpc and google.protobuf, for the suites that
// run the Python client (clients/python). Like the optional programs
// (optional-program.ts), a missing one skips those suites with a one-line
// reason, unless SHOPMESH_REQUIRE lists python3-grpcio (or CI is set), when
// it fails them instead.
import { spawnSync } from "node:child_process";
import { findProgram, isRequired, requiredBecause } from "./optional-program.js";

/** The name SHOPMESH_REQUIRE lists: the Debian package, which brings python3 along. */
export const pythonGrpcioName = "python3-grpcio";

/**
 * Debian's interpreter, where apt's python3-grpcio and python3-protobuf
 * install: a python3 earlier on PATH (pyenv, a virtualenv) does not see them.
 */
export const debianPython = "/usr/bin/python3";

export interface PythonGrpcio {
  /** The interpreter that imports both modules, when one does. */
  readonly path: string | undefined;
  /** True when none does: the argument for describe.skipIf. */
  readonly missing: boolean;
  /** Why the suites that need it are skipped; undefined when it is there. */
  readonly skipReason: string | undefined;
}

/** Whether `python` runs and imports grpc and google.protobuf. */
export function importsGrpcio(python: string): boolean {
  const result = spawnSync(python, ["-c", "import grpc, google.protobuf"], { stdio: "ignore", timeout: 30_000 });
  return result.status === 0;
}

const reported = new Set<string>();

/**
 * The first of SHOPMESH_PYTHON (when set, the only one tried), python3 on
 * PATH, and Debian's /usr/bin/python3 that imports grpc and google.protobuf.
 * When none does and it is required this throws, so the test file fails;
 * otherwise it prints the skip reason once and returns it.
 */
export function requirePythonGrpcio(
  neededFor: string,
  env: NodeJS.ProcessEnv = process.env,
  fallbacks: readonly string[] = [debianPython],
): PythonGrpcio {
  const named = env.SHOPMESH_PYTHON?.trim();
  const onPath = findProgram("python3", {}, env);
  const candidates = named ? [named] : [...new Set([...(onPath ? [onPath] : []), ...fallbacks])];
  const found = candidates.find(importsGrpcio);
  if (found) return { path: found, missing: false, skipReason: undefined };

  const tried = candidates.length > 0 ? candidates.join(", ") : "no python3 on PATH";
  const problem = `no Python 3 that imports grpc and google.protobuf (tried ${tried})`;
  const remedy = `apt-get install ${pythonGrpcioName} python3-protobuf (Debian/Ubuntu, for ${debianPython}), or set SHOPMESH_PYTHON to a python3 that has them.`;
  if (isRequired(pythonGrpcioName, env)) {
    throw new Error(
      `${pythonGrpcioName} is required here (${requiredBecause(env)}) but there is ${problem}, and ${neededFor} may not be skipped. To fix: ${remedy}`,
    );
  }
  const skipReason = `${problem}: skipping ${neededFor}. To run it: ${remedy}`;
  if (!reported.has(skipReason)) {
    reported.add(skipReason);
    console.warn(`skipped: ${skipReason}`);
  }
  return { path: undefined, missing: true, skipReason };
}
