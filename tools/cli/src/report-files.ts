import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Writes a command's report as `<name>.json` (the figures) and `<name>.md`
 * (the figures rendered for people) into `outDir`; returns their paths.
 */
export function writeReportFiles(
  outDir: string,
  name: string,
  report: unknown,
  markdown: string,
): { json: string; markdown: string } {
  mkdirSync(outDir, { recursive: true });
  const paths = { json: join(outDir, `${name}.json`), markdown: join(outDir, `${name}.md`) };
  writeFileSync(paths.json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(paths.markdown, markdown);
  return paths;
}
