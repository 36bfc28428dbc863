import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { numberOption } from "../command-line.js";

/** What one `shopmesh soak` run does. */
export interface SoakSettings {
  durationMs: number;
  /** Calls started per second; undefined: half the capacity a short probe measures. */
  rate: number | undefined;
  /** Length of one reported window. */
  windowMs: number;
  probeMs: number;
  outDir: string;
  products: number;
  customers: number;
}

export const soakUsage = `usage: shopmesh soak [options]

Starts its own mesh on free loopback ports, runs a mixed load (sign-ins,
product reads, orders, STRONG and EVENTUAL views) at about half of the
capacity a short probe measures, switches faults on and off on a schedule,
and reports per window: calls, errors by code, p50/p99, RSS and heap per
process. At the end: RSS slope per process, unexpected errors, lost writes.
Exits 1 when there were unexpected errors or lost writes.

  --minutes 10        how long the load runs
  --seconds <n>       the same in seconds (for short runs; overrides --minutes)
  --rate <calls/s>    calls started per second (default: half the probed capacity)
  --window <seconds>  one report line per window (default 60, shorter for short runs)
  --out <dir>         where soak.md and soak.json go (default reports/ for a run of
                      10 minutes or more, data/soak/ for a shorter one)`;

const root = fileURLToPath(new URL("../../../..", import.meta.url));

/** Thrown for `--help`. */
export class UsageRequested extends Error {}

/** Reads the command line; throws an Error with a readable message when it is wrong. */
export function readSoakSettings(args: string[]): SoakSettings {
  const { values } = parseArgs({
    args,
    options: {
      minutes: { type: "string" },
      seconds: { type: "string" },
      rate: { type: "string" },
      window: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", default: false },
    },
    allowPositionals: false,
  });
  if (values.help) throw new UsageRequested();
  const number = (flag: string, text: string | undefined, min: number, max: number): number | undefined =>
    text === undefined ? undefined : numberOption(flag, text, min, max);
  const seconds = number("seconds", values.seconds, 5, 24 * 3600);
  const minutes = number("minutes", values.minutes, 0.1, 24 * 60);
  const durationMs = Math.round((seconds ?? (minutes ?? 10) * 60) * 1000);
  // A minute, or whole seconds giving about six windows in a shorter run.
  const windowMs =
    Math.round(number("window", values.window, 1, 3600) ?? Math.min(60, Math.max(1, Math.round(durationMs / 6000)))) *
    1000;
  const full = durationMs >= 10 * 60_000;
  return {
    durationMs,
    rate: number("rate", values.rate, 1, 100_000),
    windowMs,
    probeMs: durationMs >= 5 * 60_000 ? 5_000 : 2_000,
    outDir: values.out === undefined ? resolve(root, full ? "reports" : "data/soak") : resolve(values.out),
    products: 20,
    customers: 8,
  };
}
