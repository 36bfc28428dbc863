import { existsSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const consoleDir = fileURLToPath(new URL("../..", import.meta.url));
/** Where `npm run build:console` (vite build) writes the page. */
export const pageDir = join(consoleDir, "dist");

/** The newest modification time of the page's sources (src/app and the types it shares with the server). */
function newestSourceMs(): number {
  const files = readdirSync(join(consoleDir, "src", "app"), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
  files.push(join(consoleDir, "src", "summary-types.ts"), join(consoleDir, "vite.config.ts"));
  return Math.max(...files.map((file) => statSync(file).mtimeMs));
}

/** Whether dist/ holds a page built from the sources as they are now. */
export function pageIsCurrent(): boolean {
  const index = join(pageDir, "index.html");
  return existsSync(index) && statSync(index).mtimeMs >= newestSourceMs();
}

/**
 * Builds the page with Vite (what `npm run build:console` runs) unless
 * dist/ is already newer than every source; the bundle is only ever made
 * this way, never edited. Returns whether it built.
 */
export async function ensurePageBuilt(): Promise<boolean> {
  if (pageIsCurrent()) return false;
  const { build } = await import("vite");
  // Built beside dist/ and moved into place, so that two starts building at once (tests in parallel on a
  // fresh checkout) never serve a half-written page; the last to finish wins, and both builds are the same.
  const staging = `${pageDir}.build-${process.pid}`;
  try {
    await build({
      configFile: join(consoleDir, "vite.config.ts"),
      logLevel: "warn",
      build: { outDir: staging, emptyOutDir: true },
    });
    rmSync(pageDir, { recursive: true, force: true });
    renameSync(staging, pageDir);
  } catch (error) {
    if (!existsSync(join(pageDir, "index.html"))) throw error;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return true;
}
