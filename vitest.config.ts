import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Integration tests start real server processes on loopback; they run in
// separate worker processes, two at a time on a two-core machine.
export default defineConfig({
  // The workspaces' entry points resolve to their TypeScript sources through
  // tsconfig.json's paths (their package.json "exports" name compiled files).
  resolve: { tsconfigPaths: true },
  test: {
    // Processes the tests start with --import tsx find the same mapping
    // whatever their working directory.
    env: { TSX_TSCONFIG_PATH: fileURLToPath(new URL("./tsconfig.json", import.meta.url)) },
    include: [
      "test/**/*.test.ts",
      "sdk/test/**/*.test.ts",
      "services/*/test/**/*.test.ts",
      "tools/*/test/**/*.test.ts",
    ],
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ["default"],
  },
});
