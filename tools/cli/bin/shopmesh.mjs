#!/usr/bin/env node
// The shopmesh command. Its code is TypeScript, run through tsx.
import { fileURLToPath } from "node:url";
import { register } from "tsx/esm/api";

// The repository's tsconfig.json maps the workspaces' entry points to their
// sources (their package.json "exports" name compiled files): tsx reads it
// from here whatever the working directory, and so do the processes the
// command starts with --import tsx, which inherit the variable.
process.env.TSX_TSCONFIG_PATH ??= fileURLToPath(new URL("../../../tsconfig.json", import.meta.url));
register();
await import("../src/main.ts");
