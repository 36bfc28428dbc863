import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The console's page: Preact components in src/app, built to dist/ and
// served by the console's own server (src/server). The generated contracts
// and @shopmesh/sdk resolve to their TypeScript sources through the
// repository's tsconfig paths, as everywhere else in the checkout.
export default defineConfig({
  root: fileURLToPath(new URL("./src/app", import.meta.url)),
  base: "./",
  logLevel: "warn",
  resolve: { tsconfigPaths: true },
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: fileURLToPath(new URL("./dist", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    reportCompressedSize: false,
  },
});
