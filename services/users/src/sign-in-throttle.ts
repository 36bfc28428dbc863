import { LRUCache } from "lru-cache";
import { Code, ConnectError } from "@connectrpc/connect";

/** How many failed sign-ins each kind of key allows before it is made to wait. */
export interface SignInLimits {
  /** Failures for one account from one client address (SIGN_IN_FAILURES_PER_ACCOUNT_ADDRESS), default 5. */
  perAccountAndAddress: number;
  /** Failures from one client address, whatever the accounts (SIGN_IN_FAILURES_PER_ADDRESS), default 50. */
  perAddress: number;
  /**
   * Failures for one account, whatever the addresses (SIGN_IN_FAILURES_PER_ACCOUNT),
   * default 500: far above the per-address limit, so that someone guessing
   * from one address locks out only that address, not the owner elsewhere.
   */
  perAccount: number;
  /** The first wait once a limit is passed, doubling with every further failure (SIGN_IN_BASE_DELAY), default 1 s. */
  baseDelayMs: number;
  /** The longest wait (SIGN_IN_MAX_DELAY), default 15 min. */
  maxDelayMs: number;
  /** Failures are forgotten after this long without one (SIGN_IN_FAILURE_WINDOW), default 15 min. */
  windowMs: number;
}

export const defaultSignInLimits: SignInLimits = Object.freeze({
  perAccountAndAddress: 5,
  perAddress: 50,
  perAccount: 500,
  baseDelayMs: 1000,
  maxDelayMs: 15 * 60_000,
  windowMs: 15 * 60_000,
});

interface Failures {
  count: number;
  /** No sign-in for this key before then (ms since the epoch). */
  blockedUntilMs: number;
}

/** The trailer that tells a gRPC client how long to wait before trying again (gRFC A6). */
export const retryPushbackTrailer = "grpc-retry-pushback-ms";

/**
 * Slows down password guessing. Failed sign-ins are counted per account and
 * client address, per client address and per account; once a count passes
 * its limit, every further sign-in for that key waits a delay that doubles
 * with each failure, and is refused until then with RESOURCE_EXHAUSTED,
 * saying when to try again in the message and in the `grpc-retry-pushback-ms`
 * trailer. A success clears the account-and-address count. The counts live
 * in memory, in an LRU of bounded size, so a flood of made-up keys cannot
 * grow it without end; a restart forgets them.
 */
export class SignInThrottle {
  readonly #failures: LRUCache<string, Failures>;

  constructor(
    private readonly limits: SignInLimits = defaultSignInLimits,
    maxEntries = 100_000,
  ) {
    this.#failures = new LRUCache({ max: maxEntries, ttl: limits.windowMs, updateAgeOnGet: false });
  }

  /** Refuses with RESOURCE_EXHAUSTED when any of the call's keys must still wait. */
  check(account: string, address: string, now = Date.now()): void {
    const waitMs = Math.max(
      ...this.#keys(account, address).map(([key]) => (this.#failures.get(key)?.blockedUntilMs ?? 0) - now),
    );
    if (waitMs > 0) {
      const seconds = Math.ceil(waitMs / 1000);
      throw new ConnectError(`too many failed sign-ins; try again in ${seconds} s`, Code.ResourceExhausted, {
        [retryPushbackTrailer]: String(Math.ceil(waitMs)),
      });
    }
  }

  /** Counts a failed sign-in. */
  failed(account: string, address: string, now = Date.now()): void {
    for (const [key, limit] of this.#keys(account, address)) {
      const count = (this.#failures.get(key)?.count ?? 0) + 1;
      // The limit-th failure already makes the next try wait.
      const over = count - limit;
      const blockedUntilMs =
        over >= 0 ? now + Math.min(this.limits.baseDelayMs * 2 ** Math.min(over, 30), this.limits.maxDelayMs) : 0;
      this.#failures.set(key, { count, blockedUntilMs });
    }
  }

  /** Forgets the failures of this account from this address after a successful sign-in. */
  succeeded(account: string, address: string): void {
    this.#failures.delete(this.#keys(account, address)[0]![0]);
  }

  #keys(account: string, address: string): [string, number][] {
    return [
      [`account+address ${account} ${address}`, this.limits.perAccountAndAddress],
      [`address ${address}`, this.limits.perAddress],
      [`account ${account}`, this.limits.perAccount],
    ];
  }
}
