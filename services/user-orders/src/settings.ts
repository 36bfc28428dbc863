import { ConfigError, envReader, maxTimerMs, type EnvReader } from "@shopmesh/chassis";
import { isHostAndPort } from "@shopmesh/sdk";
import type { AggregatorSettings } from "./aggregate.js";
import type { DependencyName } from "./dependencies.js";

type Env = Record<string, string | undefined>;

/**
 * user-orders' own admission default: 16 views at once rather than every
 * service's 64. Each view makes about three downstream calls (more with
 * retries), so 16 views stay within the 64 calls each dependency admits,
 * and its own load never earns it refusals from them. More would not be
 * faster: a view is CPU-bound (about 3 ms of CPU across the mesh), so more
 * views at once only make each one slower. Under 1,000 callers at once
 * (`shopmesh overload`) a slot was held 2,139 ms on average with 64 slots
 * and 677 ms with 16, for as many views a second or more. The bench's 64
 * callers queue instead (see README: Overload).
 */
export const userOrdersAdmission = { maxCallsInFlight: 16 } as const;

/**
 * Where each dependency listens (USERS_TARGET, ORDERS_TARGET,
 * PRODUCTS_TARGET): host:port, or with grpc-js's client a target with one of
 * its schemes. connect-node's client takes host:port only, so with
 * DEPENDENCY_CLIENT=connect-node a scheme is refused at start rather than
 * failing every call.
 */
export function readDependencyTargets(env: Env = process.env): Record<DependencyName, string> {
  const read = envReader(env);
  const connectNode = readDependencyClient(env) === "connect-node";
  const target = (name: string, fallback: string) => {
    const text = read.target(name, fallback);
    if (connectNode && !isHostAndPort(text))
      throw new ConfigError(
        name,
        text,
        'host:port, such as "127.0.0.1:50051", with DEPENDENCY_CLIENT=connect-node (its client takes no scheme)',
      );
    return text;
  };
  return {
    users: target("USERS_TARGET", "127.0.0.1:50051"),
    orders: target("ORDERS_TARGET", "127.0.0.1:50053"),
    products: target("PRODUCTS_TARGET", "127.0.0.1:50052"),
  };
}

/**
 * Which gRPC client calls the dependencies (DEPENDENCY_CLIENT): grpc-js
 * (default), or connect-node's, to measure the services against the stack
 * connect-es users would build.
 */
export function readDependencyClient(env: Env = process.env): "grpc-js" | "connect-node" {
  return envReader(env).oneOf("DEPENDENCY_CLIENT", ["grpc-js", "connect-node"] as const, "grpc-js");
}

/**
 * How the view is built, from the environment. Defaults:
 * - USERS_TIMEOUT 300ms, ORDERS_TIMEOUT 500ms (the one dependency the view
 *   cannot do without gets the most time), PRODUCTS_TIMEOUT 300ms;
 * - DEFAULT_BUDGET 1s when the caller sets no deadline, DEADLINE_RESERVE 15ms
 *   kept back for answering;
 * - BREAKER_FAILURES 5 consecutive outage-like failures open a breaker for
 *   BREAKER_COOLDOWN 2s;
 * - RETRY_ATTEMPTS 2 retries on UNAVAILABLE, RETRY_BASE_DELAY 20ms growing
 *   with jitter up to RETRY_MAX_DELAY 200ms;
 * - HEDGE_USERS_DELAY, HEDGE_ORDERS_DELAY, HEDGE_PRODUCTS_DELAY unset: no
 *   hedging;
 * - STALE_CACHE_SIZE 1000 kept orders pages (0 turns it off), served for up
 *   to STALE_MAX_AGE 5m;
 * - FAN_OUT parallel: users and orders at once, then products; "sequential"
 *   calls users, then orders, then products, one after another (the
 *   experiment compares the two);
 * - PRODUCTS_SHARDS unset: the product ids go in as few BatchGetProducts
 *   calls as the batch limit allows; k splits them into k parallel calls
 *   (fewer when a view has fewer than k products), so that a view fans out
 *   to 2 + k calls (the experiment's tail-amplification sweep).
 */
export function readAggregatorSettings(env: Env = process.env): AggregatorSettings {
  const read = envReader(env);
  return {
    defaultBudgetMs: positiveDuration(read, "DEFAULT_BUDGET", "1s"),
    reserveMs: read.durationMs("DEADLINE_RESERVE", "15ms"),
    dependencies: {
      users: {
        timeoutMs: positiveDuration(read, "USERS_TIMEOUT", "300ms"),
        hedgeDelayMs: hedgeDelay(read, "HEDGE_USERS_DELAY"),
      },
      orders: {
        timeoutMs: positiveDuration(read, "ORDERS_TIMEOUT", "500ms"),
        hedgeDelayMs: hedgeDelay(read, "HEDGE_ORDERS_DELAY"),
      },
      products: {
        timeoutMs: positiveDuration(read, "PRODUCTS_TIMEOUT", "300ms"),
        hedgeDelayMs: hedgeDelay(read, "HEDGE_PRODUCTS_DELAY"),
      },
    },
    breaker: {
      failures: read.int("BREAKER_FAILURES", 5, { min: 1, max: 1000 }),
      cooldownMs: positiveDuration(read, "BREAKER_COOLDOWN", "2s"),
    },
    retry: {
      retries: read.int("RETRY_ATTEMPTS", 2, { min: 0, max: 10 }),
      baseDelayMs: read.durationMs("RETRY_BASE_DELAY", "20ms"),
      maxDelayMs: read.durationMs("RETRY_MAX_DELAY", "200ms"),
    },
    staleOrders: {
      maxEntries: read.int("STALE_CACHE_SIZE", 1000, { min: 0, max: 1_000_000 }),
      maxAgeMs: read.durationMs("STALE_MAX_AGE", "5m"),
    },
    fanOut: fanOut(read),
    productsShards:
      read.optionalString("PRODUCTS_SHARDS") === undefined
        ? undefined
        : read.int("PRODUCTS_SHARDS", 1, { min: 1, max: 64 }),
  };
}

function fanOut(read: EnvReader): "sequential" | undefined {
  const value = read.optionalString("FAN_OUT")?.trim().toLowerCase();
  if (value === undefined || value === "" || value === "parallel") return undefined;
  if (value === "sequential") return "sequential";
  throw new ConfigError("FAN_OUT", value, "parallel or sequential");
}

/** A duration above zero that becomes a timer. */
function positiveDuration(read: EnvReader, name: string, fallback: string): number {
  return read.durationMs(name, fallback, { min: 1, max: maxTimerMs });
}

function hedgeDelay(read: EnvReader, name: string): number | undefined {
  return read.optionalString(name) === undefined ? undefined : read.durationMs(name, 0);
}
