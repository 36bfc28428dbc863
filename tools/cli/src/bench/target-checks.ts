import { serviceNames } from "../mesh/local-mesh.js";
import type { RssResult, StepResult, TargetCheck } from "./bench-results.js";

/** The concurrency the throughput targets are defined at. */
export const targetConcurrency = 64;

/**
 * The three targets, measured: GetProduct at least 85 % of the bare
 * baseline's calls/s at 64 in flight (over the same transport), GetUserOrders
 * at least 20 %, and every service's peak RSS within 1.3 times the bare
 * server's (the mesh's four; the products variants are not the mesh). When 64 was not
 * measured, the highest level measured stands in (and the detail says so).
 */
export function checkTargets(steps: StepResult[], rss: RssResult[]): TargetCheck[] {
  const levels = [...new Set(steps.map((step) => step.concurrency))].sort((a, b) => a - b);
  const level = levels.includes(targetConcurrency) ? targetConcurrency : levels[levels.length - 1]!;
  const stand = level === targetConcurrency ? "" : ` (64 was not measured; at ${level} instead)`;
  const throughput = (key: StepResult["target"], name: string, target: number): TargetCheck => {
    const step = steps.find((candidate) => candidate.target === key && candidate.concurrency === level);
    const baseline = step?.baseline ?? "bare";
    const bare = steps.find((candidate) => candidate.target === baseline && candidate.concurrency === level);
    const measured = step?.ratioToBaseline ?? 0;
    return {
      name,
      measured,
      target,
      unit: "share of baseline calls/s",
      pass: measured >= target,
      detail: `${fmt(step?.callsPerSecond ?? 0)} calls/s vs ${fmt(bare?.callsPerSecond ?? 0)} for the bare server${baseline === "bare.tls" ? " over TLS" : ""} at ${level} in flight${stand}`,
    };
  };
  const services = rss.filter((row) => (serviceNames as readonly string[]).includes(row.process));
  const worst = services.reduce<RssResult | undefined>(
    (top, row) => (top === undefined || row.ratioToBaseline > top.ratioToBaseline ? row : top),
    undefined,
  );
  const bare = rss.find((row) => row.process === "bare-baseline");
  return [
    throughput("products.GetProduct", "products.GetProduct throughput at 64 in flight", 0.85),
    throughput("user-orders.GetUserOrders", "user-orders.GetUserOrders throughput at 64 in flight", 0.2),
    {
      name: "peak RSS of every service under load",
      measured: worst?.ratioToBaseline ?? 0,
      target: 1.3,
      unit: "multiple of baseline peak RSS",
      pass: worst !== undefined && worst.ratioToBaseline <= 1.3,
      detail: `largest: ${worst?.process ?? "?"} at ${fmt(worst?.peakMiB ?? 0)} MiB vs ${fmt(bare?.peakMiB ?? 0)} MiB for the bare server`,
    },
  ];
}

export const fmt = (value: number, digits = 0) =>
  Number.isFinite(value)
    ? value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : "-";
