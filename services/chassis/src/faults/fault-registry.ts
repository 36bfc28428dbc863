import { setTimeout as sleep } from "node:timers/promises";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Fault, FaultSchema } from "@shopmesh/sdk/faults/v1";
import { parseDurationMs } from "../config.js";
import { statusNames } from "../server/call-status.js";

/** A fault in force for one method, or for all methods (`*`). */
export interface FaultRule {
  /** Short method name ("GetProduct") or "*". */
  method: string;
  latencyMs: number;
  /** 0: every call gets the latency; otherwise only this fraction of calls. */
  slowProbability: number;
  errorRate: number;
  errorCode: Code;
  hang: boolean;
}

const everyMethod = "*";

/** Reduces "pkg.Service/Method", "/pkg.Service/Method" or "Method" to "Method"; "" and "*" to "*". */
function methodKey(method: string): string {
  const trimmed = method.trim();
  if (trimmed === "" || trimmed === everyMethod) return everyMethod;
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

function fraction(field: string, value: number): number {
  if (!Number.isFinite(value) || value < 0 || value > 1) {
    throw new ConnectError(`${field}: must be from 0 to 1`, Code.InvalidArgument);
  }
  return value;
}

/** Checks a fault as it arrives (from the admin RPC or the environment) and normalises it. */
export function toFaultRule(fault: Fault): FaultRule {
  const codeName = fault.errorCode.trim().toUpperCase() || "UNAVAILABLE";
  const errorCode = statusNames.indexOf(codeName);
  if (errorCode <= 0)
    throw new ConnectError(
      `error_code: "${fault.errorCode}" is not a gRPC status code name other than OK`,
      Code.InvalidArgument,
    );
  const latency = fault.latency;
  if (latency && (Math.abs(latency.nanos) > 999_999_999 || (latency.seconds > 0n && latency.nanos < 0)))
    throw new ConnectError("latency: not a valid duration (nanos out of range)", Code.InvalidArgument);
  const latencyMs = latency ? Number(latency.seconds) * 1000 + latency.nanos / 1e6 : 0;
  if (latencyMs < 0 || latencyMs > 600_000)
    throw new ConnectError("latency: must be from 0 to 10 minutes", Code.InvalidArgument);
  const rule = {
    method: methodKey(fault.method),
    latencyMs,
    slowProbability: fraction("slow_probability", fault.slowProbability),
    errorRate: fraction("error_rate", fault.errorRate),
    errorCode: errorCode as Code,
    hang: fault.hang,
  };
  // Stored, it would list as a fault and replace the one before it, and change nothing.
  if (rule.latencyMs === 0 && rule.errorRate === 0 && !rule.hang)
    throw new ConnectError("fault: injects nothing; set latency, error_rate or hang", Code.InvalidArgument);
  return rule;
}

/** A rule as the contract describes it. */
export function toFault(rule: FaultRule): MessageInitShape<typeof FaultSchema> {
  return {
    method: rule.method,
    latency: durationFromMs(rule.latencyMs),
    slowProbability: rule.slowProbability,
    errorRate: rule.errorRate,
    errorCode: statusNames[rule.errorCode],
    hang: rule.hang,
  };
}

/**
 * Parses the FAULTS environment variable: a JSON array of faults, e.g.
 * `[{"method":"GetProduct","latency":"300ms","slowProbability":0.1},
 *   {"method":"*","errorRate":0.2,"errorCode":"UNAVAILABLE"}]`.
 */
export function parseFaultsEnv(text: string): FaultRule[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`FAULTS is not JSON: ${text}`);
  }
  if (!Array.isArray(parsed)) throw new Error("FAULTS must be a JSON array of faults");
  return parsed.map((entry: Record<string, unknown>, index) => {
    const latency = entry.latency === undefined ? 0 : parseDurationMs(String(entry.latency));
    if (latency === undefined) throw new Error(`FAULTS[${index}].latency: not a duration such as "300ms"`);
    try {
      return toFaultRule({
        $typeName: "shopmesh.faults.v1.Fault",
        method: String(entry.method ?? everyMethod),
        latency: durationFromMs(latency),
        slowProbability: Number(entry.slowProbability ?? 0),
        errorRate: Number(entry.errorRate ?? 0),
        errorCode: String(entry.errorCode ?? ""),
        hang: entry.hang === true,
      });
    } catch (error) {
      throw new Error(`FAULTS[${index}].${error instanceof ConnectError ? error.rawMessage : String(error)}`);
    }
  });
}

/**
 * The faults a service injects into its own calls. Its interceptor runs
 * outermost, before authentication and the handler, so an injected delay or
 * error looks to callers exactly like a slow or failing service.
 */
export class FaultRegistry {
  readonly #rules = new Map<string, FaultRule>();
  /** The methods a fault may name, once the service knows what it hosts. */
  #methods: ReadonlySet<string> | undefined;

  constructor(
    /** Whether faults may be set at all (FAULT_INJECTION=on). */
    readonly enabled: boolean,
    initial: FaultRule[] = [],
    private readonly random: () => number = Math.random,
  ) {
    for (const rule of initial) this.set(rule);
  }

  /**
   * Limits faults to the methods the service hosts (and `*`), checking the
   * ones already set: a fault for a method that does not exist would be
   * listed as in force and never happen.
   */
  restrictTo(methods: Iterable<string>): void {
    this.#methods = new Set(methods);
    for (const rule of this.#rules.values()) this.#check(rule.method);
  }

  set(rule: FaultRule): void {
    this.#check(rule.method);
    this.#rules.set(rule.method, rule);
  }

  #check(method: string): void {
    if (this.#methods === undefined || method === everyMethod || this.#methods.has(method)) return;
    const names = [...this.#methods];
    const meant = names.find((name) => name.toLowerCase() === method.toLowerCase());
    throw new ConnectError(
      `method: "${method}" is not a method of this service${meant ? ` (did you mean "${meant}"?)` : ""}; one of ${names.join(", ")}, or "*" for every method`,
      Code.InvalidArgument,
    );
  }

  /** Removes one method's fault, or all faults. */
  clear(method?: string): void {
    if (method === undefined || method.trim() === "") this.#rules.clear();
    else this.#rules.delete(methodKey(method));
  }

  list(): FaultRule[] {
    return [...this.#rules.values()];
  }

  /** The rule for a method: its own, else the one for every method. */
  ruleFor(method: string): FaultRule | undefined {
    return this.#rules.get(method) ?? this.#rules.get(everyMethod);
  }

  readonly interceptor: Interceptor = (next) => async (req) => {
    const rule = this.#rules.size === 0 ? undefined : this.ruleFor(req.method.name);
    if (rule) {
      if (rule.hang) {
        await new Promise((_, reject) => {
          if (req.signal.aborted) reject(req.signal.reason);
          req.signal.addEventListener("abort", () => reject(req.signal.reason), { once: true });
        });
      }
      if (rule.latencyMs > 0 && (rule.slowProbability === 0 || this.random() < rule.slowProbability)) {
        await sleep(rule.latencyMs, undefined, { signal: req.signal }).catch(() => {
          throw req.signal.reason;
        });
      }
      if (rule.errorRate > 0 && this.random() < rule.errorRate) {
        throw new ConnectError(`injected fault: ${statusNames[rule.errorCode]}`, rule.errorCode);
      }
    }
    return next(req);
  };
}
