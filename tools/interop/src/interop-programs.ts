import { accessSync, constants, statSync } from "node:fs";

/** grpc-go's interop programs, found from the environment. */
export interface InteropPrograms {
  client: string;
  server: string;
}

/** The variables that name the programs, and what each one is. */
export const programVariables = {
  client: "GRPC_INTEROP_CLIENT",
  server: "GRPC_INTEROP_SERVER",
} as const;

/**
 * The interop client and server named by GRPC_INTEROP_CLIENT and
 * GRPC_INTEROP_SERVER, or the reasons they cannot be used (unset, not an
 * executable file), one line each.
 */
export function findInteropPrograms(env: NodeJS.ProcessEnv = process.env): InteropPrograms | { problems: string[] } {
  const problems: string[] = [];
  const found: Partial<InteropPrograms> = {};
  for (const [role, variable] of Object.entries(programVariables) as [keyof InteropPrograms, string][]) {
    const path = env[variable]?.trim();
    if (!path) problems.push(`${variable} is not set: it must name grpc-go's interop ${role} program`);
    else if (!isExecutable(path)) problems.push(`${variable}=${path} is not an executable file`);
    else found[role] = path;
  }
  if (problems.length > 0) return { problems };
  return found as InteropPrograms;
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
