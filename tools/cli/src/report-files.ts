import { cpus, loadavg } from "node:os";
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

/** The machine a load run measured on, as its report records it. */
export interface RunMachine {
  cpus: number;
  node: string;
  /** One-minute load average when the run ended: how busy the machine was. */
  loadAverageAtEnd: number;
}

/** This machine, now (call it when the run ends). */
export function thisMachine(): RunMachine {
  return { cpus: cpus().length, node: process.version, loadAverageAtEnd: loadavg()[0]! };
}

/** A report's first line: the command, when it ran, and on what. */
export function runLine(report: { command: string; generatedAt: string; machine: RunMachine }): string {
  const { cpus: count, loadAverageAtEnd, node } = report.machine;
  return `\`${report.command}\`, ${report.generatedAt}, ${count} CPUs (load average ${loadAverageAtEnd.toFixed(1)} at the end), Node ${node}.`;
}
