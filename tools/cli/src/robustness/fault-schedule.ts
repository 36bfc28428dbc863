// The faults `shopmesh soak` switches on and off, when, and which failed
// calls each of them explains.

/** The faults of a soak. */
export type FaultKind = "products-latency" | "users-errors" | "products-hang";

/** The calls of a soak's mixed load. */
export type Operation = "SignIn" | "GetProduct" | "CreateOrder" | "GetUserOrders STRONG" | "GetUserOrders EVENTUAL";
export const operations: readonly Operation[] = [
  "SignIn",
  "GetProduct",
  "CreateOrder",
  "GetUserOrders STRONG",
  "GetUserOrders EVENTUAL",
];

/** One fault in force from `fromMs` to `toMs` after the load started. */
export interface FaultPhase {
  kind: FaultKind;
  fromMs: number;
  toMs: number;
}

/** What each fault is, in words, for the report. */
export const faultDescriptions: Record<FaultKind, string> = {
  "products-latency": "products: GetProduct and BatchGetProducts 100 ms slower",
  "users-errors": "users: 20 % of SignIn and GetUser fail with UNAVAILABLE",
  "products-hang": "products: GetProduct and BatchGetProducts hang (no answer until the caller's deadline)",
};

/** Where in each cycle a fault is on, as fractions of the cycle. */
const cycle: { kind: FaultKind; from: number; to: number }[] = [
  { kind: "products-latency", from: 0.15, to: 0.35 },
  { kind: "users-errors", from: 0.45, to: 0.65 },
  { kind: "products-hang", from: 0.75, to: 0.82 },
];

/** How long one cycle of faults lasts for a run of `durationMs`: two minutes, shorter for short runs (at least two cycles). */
export function cycleMs(durationMs: number): number {
  return Math.min(120_000, Math.max(5_000, durationMs / 2));
}

/**
 * The faults of a run of `durationMs`, cycle after cycle. Nothing is on in
 * the last tenth of the run, so that it ends on a healthy mesh.
 */
export function soakSchedule(durationMs: number): FaultPhase[] {
  const length = cycleMs(durationMs);
  const phases: FaultPhase[] = [];
  for (let start = 0; start < durationMs; start += length) {
    for (const part of cycle) {
      const phase = {
        kind: part.kind,
        fromMs: Math.round(start + part.from * length),
        toMs: Math.round(start + part.to * length),
      };
      if (phase.toMs <= durationMs * 0.9) phases.push(phase);
    }
  }
  return phases;
}

/** The codes each fault explains, per operation. INTERNAL and UNKNOWN are explained by none. */
const explains: Record<FaultKind, Partial<Record<Operation, readonly string[]>>> = {
  // 100 ms is well within every timeout: nothing fails because of it.
  "products-latency": {},
  "users-errors": { SignIn: ["UNAVAILABLE"] },
  "products-hang": {
    GetProduct: ["DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"],
    // orders cannot price the order within its products timeout, or the caller's deadline passes first.
    CreateOrder: ["UNAVAILABLE", "DEADLINE_EXCEEDED"],
  },
};

/**
 * Whether a call of `operation` that ended with `code` is explained by a
 * fault in force at some time while it ran (`faults`: the kinds in force
 * from its start to its end, with a margin for the admin call's own delay).
 */
export function isExplained(operation: Operation, code: string, faults: Iterable<FaultKind>): boolean {
  for (const kind of faults) if (explains[kind][operation]?.includes(code)) return true;
  return false;
}

/**
 * The kinds of fault in force, or still felt, at some time between `fromMs`
 * and `toMs`. A fault is felt for `lingerMs` after it is switched off: calls
 * that a hang caught keep their server's slots until their deadlines pass,
 * so the server refuses newcomers for that long after the hang ends.
 */
export function faultsBetween(
  phases: readonly FaultPhase[],
  fromMs: number,
  toMs: number,
  lingerMs: Partial<Record<FaultKind, number>> = {},
): Set<FaultKind> {
  const kinds = new Set<FaultKind>();
  for (const phase of phases) {
    if (phase.fromMs <= toMs && phase.toMs + (lingerMs[phase.kind] ?? 0) >= fromMs) kinds.add(phase.kind);
  }
  return kinds;
}
