import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BrokenCircuitError,
  circuitBreaker,
  CircuitState,
  ConsecutiveBreaker,
  ExponentialBackoff,
  handleType,
  type CircuitBreakerPolicy,
} from "cockatiel";
import { addSpanEvent, hedges, retries, statusName, trackBreaker, withAttempt } from "@shopmesh/chassis";
import { minimumCallMs, type CallBudget } from "../call-budget.js";
import { isOutageCode, isRetryableCode } from "./failure-kinds.js";
import { hedged, type Send } from "./hedge.js";
import { retryWithinDeadline } from "./retry-within-deadline.js";

export type { Send };

/** What a circuit breaker is doing, as logs and response headers spell it. */
export type BreakerState = "closed" | "open" | "half-open";

/** How one dependency is called. */
export interface GuardSettings {
  /** Longest one call may take (the caller's budget may cut it shorter). */
  timeoutMs: number;
  /** Send a second request when no answer came after this long; undefined: never hedge. */
  hedgeDelayMs?: number;
  /** Retries on UNAVAILABLE after the first attempt. */
  retries: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  /** Consecutive outage-like failures that open the circuit. */
  breakerFailures: number;
  /** How long an open circuit refuses calls before it lets one probe through. */
  breakerCooldownMs: number;
}

/** Where the time of one guarded call went. */
export interface CallTiming {
  /** Requests sent, retries included, hedges not; 0 when the call was refused. */
  attempts: number;
  /** Second, concurrent requests sent. */
  hedges: number;
  durationMs: number;
  /** Final status code by canonical name, "OK" on success. */
  code: string;
  /** Deadline the call was given; undefined when it was not made. */
  timeoutMs: number | undefined;
}

/** How a guarded call ended. It never throws: a failure is a value to decide on. */
export type GuardedResult<T> =
  | { ok: true; value: T; timing: CallTiming }
  | {
      ok: false;
      error: ConnectError;
      timing: CallTiming;
      /** True when no request was sent: the circuit was open or the budget spent. */
      refused: boolean;
      /**
       * True when the caller's budget, not the dependency's own timeout, set
       * the call's deadline (or left too little to call at all): a
       * DEADLINE_EXCEEDED then means the caller's time ran out.
       */
      budgetLimited: boolean;
    };

/** Where breaker state changes are reported. */
export interface BreakerLog {
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
}

/** Carries an outage-like failure through cockatiel, which counts only this type. */
class Outage extends Error {
  constructor(readonly failure: ConnectError) {
    super(failure.message);
  }
}

const stateNames: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: "closed",
  [CircuitState.Open]: "open",
  [CircuitState.HalfOpen]: "half-open",
  [CircuitState.Isolated]: "open",
};

/**
 * One downstream dependency behind a circuit breaker, with retries and
 * optional hedging, all inside the deadline each call is given.
 *
 * Wrapping order: breaker( retry( hedge( request ))).
 * - The breaker is outermost so that one logical call is one breaker outcome:
 *   a call that a retry rescued is a success, a call that used up its retries
 *   is one failure (not three), and an open circuit sends nothing at all, no
 *   retries, no hedges.
 * - Retry wraps hedge so that each attempt may be hedged, and an attempt is
 *   retried only when all of its requests failed. The other way round, each
 *   hedged request would run its own retries and the load would multiply.
 * - Retries and hedges share the call's single deadline.
 */
export class GuardedDependency {
  readonly #breaker: CircuitBreakerPolicy;
  readonly #retried: { inc(): void };
  readonly #hedged: { inc(): void };

  constructor(
    readonly name: string,
    readonly settings: GuardSettings,
    log: BreakerLog,
  ) {
    this.#breaker = circuitBreaker(handleType(Outage), {
      halfOpenAfter: settings.breakerCooldownMs,
      breaker: new ConsecutiveBreaker(settings.breakerFailures),
    });
    this.#breaker.onStateChange((state) => {
      const fields = { dependency: name, state: stateNames[state] };
      const message = `circuit breaker for ${name} is ${stateNames[state]}`;
      if (state === CircuitState.Closed) log.info(fields, message);
      else log.warn(fields, message);
    });
    trackBreaker(name, () => this.state);
    this.#retried = retries.labels({ dependency: name });
    this.#hedged = hedges.labels({ dependency: name });
  }

  get state(): BreakerState {
    return stateNames[this.#breaker.state];
  }

  /**
   * Calls `method` through `send` within the budget. `method` is the
   * generated descriptor: only methods declared NO_SIDE_EFFECTS or IDEMPOTENT
   * are retried or hedged.
   */
  async call<T>(method: DescMethod, send: Send<T>, budget: CallBudget, signal: AbortSignal): Promise<GuardedResult<T>> {
    const started = performance.now();
    let timeoutMs: number;
    try {
      timeoutMs = budget.timeoutFor(this.settings.timeoutMs);
    } catch (error) {
      return this.#refused(
        `${this.name} was not called: ${ConnectError.from(error).rawMessage}`,
        Code.DeadlineExceeded,
        true,
      );
    }
    // cockatiel makes every call wait for the half-open probe to finish; a
    // call that fails fast while the probe is out keeps our latency bounded.
    if (this.#breaker.state === CircuitState.HalfOpen) {
      return this.#refused(
        `circuit breaker for ${this.name} is half-open and already probing; not called`,
        Code.Unavailable,
      );
    }
    const deadline = started + timeoutMs;
    const hadFullTimeout = timeoutMs >= this.settings.timeoutMs;
    const safeToRepeat = method.idempotency !== MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN;
    const stats = { attempts: 0, hedges: 0 };
    const backoff = new ExponentialBackoff({
      initialDelay: this.settings.retryBaseDelayMs,
      maxDelay: this.settings.retryMaxDelayMs,
    });
    const attempt = () => {
      stats.attempts++;
      if (stats.attempts > 1) this.#retried.inc();
      const attempt = stats.attempts;
      let sent = 0;
      // Each request's client span tells which attempt it belongs to, and whether it is the hedge.
      const traced: Send<T> = (call) => withAttempt({ attempt, hedge: sent++ > 0 }, () => send(call));
      return hedged(traced, {
        delayMs: safeToRepeat ? this.settings.hedgeDelayMs : undefined,
        deadline,
        minimumAttemptMs: minimumCallMs,
        signal,
        isAnswer: (error) => !isOutageCode(ConnectError.from(error).code),
        onHedge: () => {
          stats.hedges++;
          this.#hedged.inc();
        },
      });
    };
    const timing = (code: string): CallTiming => ({
      ...stats,
      durationMs: performance.now() - started,
      code,
      timeoutMs,
    });
    try {
      const value = await this.#breaker.execute(async () => {
        try {
          return await retryWithinDeadline(attempt, {
            retries: safeToRepeat ? this.settings.retries : 0,
            backoff,
            retryable: (error) => isRetryableCode(ConnectError.from(error).code),
            deadline,
            minimumAttemptMs: minimumCallMs,
            signal,
          });
        } catch (error) {
          const failure = ConnectError.from(error);
          throw this.#blames(failure, hadFullTimeout) ? new Outage(failure) : failure;
        }
      });
      return { ok: true, value, timing: timing("OK") };
    } catch (error) {
      if (error instanceof BrokenCircuitError) {
        return this.#refused(`circuit breaker for ${this.name} is open; not called`, Code.Unavailable);
      }
      const failure = error instanceof Outage ? error.failure : ConnectError.from(error);
      return {
        ok: false,
        error: failure,
        timing: timing(statusName(failure.code)),
        refused: false,
        budgetLimited: !hadFullTimeout,
      };
    }
  }

  /**
   * Whether a failure counts against the dependency's breaker. A timeout
   * counts only when the dependency had its whole own timeout: one caller's
   * short deadline must not open the circuit for every caller. A half-open
   * probe's timeout always counts, since cockatiel closes the circuit on any
   * failure it is not told to count.
   */
  #blames(failure: ConnectError, hadFullTimeout: boolean): boolean {
    if (!isOutageCode(failure.code)) return false;
    if (failure.code !== Code.DeadlineExceeded) return true;
    return hadFullTimeout || this.#breaker.state === CircuitState.HalfOpen;
  }

  #refused(message: string, code: Code, budgetLimited = false): GuardedResult<never> {
    addSpanEvent("dependency not called", { "peer.service": this.name, "rpc.grpc.status_code": code, message });
    return {
      ok: false,
      error: new ConnectError(message, code),
      timing: { attempts: 0, hedges: 0, durationMs: 0, code: statusName(code), timeoutMs: undefined },
      refused: true,
      budgetLimited,
    };
  }
}
