import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseCommandLine, portOption } from "../command-line.js";
import { defaultPortBase } from "./experiment-mesh.js";

export const experimentUsage = `usage: shopmesh experiment [--quick] [--out DIR] [--port-base PORT]

  --quick           small samples, under a minute (for CI); writes data/experiment-quick/
                    unless --out says otherwise, never the committed report
  --out DIR         where to write coupling.md and its charts
                    (default: reports/, or data/experiment-quick/ with --quick)
  --port-base PORT  first of the four service ports (default ${defaultPortBase}, also
                    SHOPMESH_EXPERIMENT_PORT_BASE); the admin listeners take free ports

Starts its own mesh in a temporary directory, seeds it, measures latency,
availability, tail amplification and an outage, the same for EVENTUAL views
(answered from user-orders' projection), and their staleness, traces three
views through the four services (the services export their spans to a
receiver in the command), and writes the report.`;

const root = fileURLToPath(new URL("../../../..", import.meta.url));

/** What one `shopmesh experiment` run does. */
export interface ExperimentSettings {
  quick: boolean;
  /** Where coupling.md, coupling.json and the charts go. */
  outDir: string;
  portBase: number;
}

/** Reads the command line; undefined for --help; throws a UsageError when it cannot be used. */
export function readExperimentSettings(
  args: string[],
  env: Record<string, string | undefined> = process.env,
): ExperimentSettings | undefined {
  const { values } = parseCommandLine({
    args,
    options: {
      quick: { type: "boolean", default: false },
      out: { type: "string" },
      "port-base": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return undefined;
  const quick = values.quick;
  // A quick run is a smoke test: its figures must not replace the measured report that is committed.
  const defaultOut = quick ? join(root, "data", "experiment-quick") : join(root, "reports");
  return {
    quick,
    outDir: resolve(values.out ?? defaultOut),
    portBase: portOption("port-base", values["port-base"] ?? env.SHOPMESH_EXPERIMENT_PORT_BASE, defaultPortBase, 3),
  };
}
