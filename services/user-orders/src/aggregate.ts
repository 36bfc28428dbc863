import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { DurationSchema, timestampFromMs, type Duration } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { statusName } from "@shopmesh/chassis";
import { OrdersService, type ListOrdersResponse } from "@shopmesh/sdk/orders/v1";
import { ProductsService, type Product } from "@shopmesh/sdk/products/v1";
import {
  Consistency,
  Fallback,
  GetUserOrdersResponseSchema,
  type DegradationSchema,
  type DependencyTimingSchema,
  type GetUserOrdersResponse,
} from "@shopmesh/sdk/userorders/v1";
import { UsersService, type User } from "@shopmesh/sdk/users/v1";
import { CallBudget } from "./call-budget.js";
import { dependencyEnum, type DependencyName } from "./dependencies.js";
import {
  GuardedDependency,
  type BreakerLog,
  type BreakerState,
  type CallTiming,
  type GuardedResult,
  type Send,
} from "./resilience/guarded-dependency.js";
import { StaleOrdersCache, type OrdersPageKey } from "./stale-orders-cache.js";
import { checkViewSize, distinctProductIds, toOrderViews, toProfile } from "./view-messages.js";

/** Cancellation and deadline of one downstream request. */
type DownstreamCall = Parameters<Send<unknown>>[0];

/** BatchGetProducts takes at most this many ids; more are asked in parallel chunks. */
export const maxBatchProducts = 500;

/** Per-dependency call settings. */
export interface DependencySettings {
  /** Longest one call may take; the caller's budget may cut it shorter. */
  timeoutMs: number;
  /** Hedge after this long without an answer; undefined: no hedging. */
  hedgeDelayMs?: number;
}

/** Everything that decides how the view is built. */
export interface AggregatorSettings {
  /** Budget of a call whose caller set no deadline. */
  defaultBudgetMs: number;
  /** Kept back from every downstream call for answering in time. */
  reserveMs: number;
  dependencies: Record<DependencyName, DependencySettings>;
  breaker: { failures: number; cooldownMs: number };
  retry: { retries: number; baseDelayMs: number; maxDelayMs: number };
  staleOrders: { maxEntries: number; maxAgeMs: number };
  /**
   * "sequential" calls users, then orders, then products, one after another
   * (for measuring what parallel fan-out saves); undefined: users and orders
   * in parallel, then products.
   */
  fanOut?: "sequential";
  /**
   * Split the product ids of a view into this many BatchGetProducts calls
   * sent in parallel (for measuring tail amplification against fan-out);
   * undefined: as few calls as the batch limit allows.
   */
  productsShards?: number;
}

/** What the aggregator is built from. */
export interface AggregatorDeps {
  users: Client<typeof UsersService>;
  orders: Client<typeof OrdersService>;
  products: Client<typeof ProductsService>;
  settings: AggregatorSettings;
  log: BreakerLog;
}

/** One GetUserOrders question, already validated and authorised. */
export interface ViewRequest {
  userId: string;
  pageSize: number;
  pageToken: string;
  /** The caller's authorization header, forwarded to every dependency. */
  authorization: string | undefined;
  /** What is left of the caller's deadline; undefined when it set none. */
  timeoutMs: number | undefined;
  /**
   * How long the call waited for admission before the view began (0 when
   * not at all): taken off the default budget of a call without a deadline,
   * so that the budget counts from the call's arrival.
   */
  waitedMs?: number;
  /** Aborted when the caller goes away. */
  signal: AbortSignal;
}

/** Builds user-orders views from the three dependencies. */
export interface UserOrdersAggregator {
  view(request: ViewRequest): Promise<GetUserOrdersResponse>;
  /** The state of each dependency's circuit breaker now. */
  breakerStates(): Record<DependencyName, BreakerState>;
}

/**
 * The synchronous aggregation: users.GetUser and orders.ListOrders in
 * parallel, then one products.BatchGetProducts for every product in those
 * orders, each call bounded by the caller's budget, and a fallback for every
 * dependency that fails.
 */
export function createUserOrdersAggregator(deps: AggregatorDeps): UserOrdersAggregator {
  const { settings } = deps;
  const guard = (name: DependencyName) =>
    new GuardedDependency(
      name,
      {
        timeoutMs: settings.dependencies[name].timeoutMs,
        hedgeDelayMs: settings.dependencies[name].hedgeDelayMs,
        retries: settings.retry.retries,
        retryBaseDelayMs: settings.retry.baseDelayMs,
        retryMaxDelayMs: settings.retry.maxDelayMs,
        breakerFailures: settings.breaker.failures,
        breakerCooldownMs: settings.breaker.cooldownMs,
      },
      deps.log,
    );
  const guards = { users: guard("users"), orders: guard("orders"), products: guard("products") };
  const staleOrders = new StaleOrdersCache(settings.staleOrders.maxEntries, settings.staleOrders.maxAgeMs);

  async function view(request: ViewRequest): Promise<GetUserOrdersResponse> {
    const budget = CallBudget.of(
      request.timeoutMs,
      settings.defaultBudgetMs - (request.waitedMs ?? 0),
      settings.reserveMs,
    );
    // Aborted when the view fails early, so that a call still in flight stops.
    // Linked by hand rather than with AbortSignal.any, which costs more per
    // call and keeps every dependent signal registered on its sources.
    const abandoned = new AbortController();
    const signal = abandoned.signal;
    const followCaller = () => abandoned.abort(request.signal.reason);
    if (request.signal.aborted) followCaller();
    else request.signal.addEventListener("abort", followCaller, { once: true });
    try {
      return await build(signal);
    } finally {
      request.signal.removeEventListener("abort", followCaller);
    }

    async function build(signal: AbortSignal): Promise<GetUserOrdersResponse> {
      const headers = request.authorization === undefined ? undefined : { authorization: request.authorization };
      const pageKey = { userId: request.userId, pageSize: request.pageSize, pageToken: request.pageToken };

      let userResult: GuardedResult<User | undefined>;
      let ordersResult: GuardedResult<ListOrdersResponse>;
      const askUsers = () =>
        guards.users
          .call(
            UsersService.method.getUser,
            async (call) => (await deps.users.getUser({ userId: request.userId }, { ...call, headers })).user,
            budget,
            signal,
          )
          .then((result) => throwCallerFault("users", result));
      const askOrders = () =>
        guards.orders
          .call(
            OrdersService.method.listOrders,
            (call) => deps.orders.listOrders(pageKey, { ...call, headers }),
            budget,
            signal,
          )
          .then((result) => throwCallerFault("orders", result));
      try {
        if (settings.fanOut === "sequential") {
          userResult = await askUsers();
          ordersResult = await askOrders();
        } else {
          [userResult, ordersResult] = await Promise.all([askUsers(), askOrders()]);
        }
      } catch (error) {
        abandoned.abort(error);
        throw error;
      }
      const degradations: MessageInitShape<typeof DegradationSchema>[] = [];
      const degrade = (dependency: DependencyName, error: ConnectError, fallback: Fallback) =>
        degradations.push({
          dependency: dependencyEnum[dependency],
          code: statusName(error.code),
          fallback,
          message: error.rawMessage,
        });
      const timings = [toTiming("users", userResult.timing), toTiming("orders", ordersResult.timing)];

      if (!userResult.ok) degrade("users", userResult.error, Fallback.NO_PROFILE);
      const orders = ordersOrKeptCopy(pageKey, ordersResult);
      if (orders.failure) degrade("orders", orders.failure, Fallback.STALE_ORDERS);

      const products = new Map<string, Product>();
      const productIds = distinctProductIds(orders.page.orders);
      if (productIds.length > 0) {
        const batchGet = (ids: string[], call: DownstreamCall) =>
          deps.products.batchGetProducts({ productIds: ids }, { ...call, headers });
        const found = await productDetails(productIds, batchGet, budget, signal);
        for (const product of found.products) products.set(product.id, product);
        if (found.failure) degrade("products", found.failure, Fallback.NO_PRODUCT_DETAILS);
        timings.push(toTiming("products", found.timing));
      }

      checkViewSize(orders.page.orders, (id) => products.get(id));
      return create(GetUserOrdersResponseSchema, {
        profile: userResult.ok && userResult.value ? toProfile(userResult.value) : undefined,
        orders: toOrderViews(orders.page.orders, products),
        nextPageToken: orders.page.nextPageToken,
        degradations,
        timings,
        staleOrders: orders.stale,
        consistency: Consistency.STRONG,
      });
    }
  }

  /**
   * The live orders page, kept for later; or, when orders failed, the kept
   * copy of the same page; or, since a view without orders has nothing to
   * show, an error: DEADLINE_EXCEEDED when it was the caller's deadline that
   * ran out (orders' deadline was what was left of the caller's budget, or
   * too little was left to call it at all), UNAVAILABLE when orders failed
   * on its own (down, erring, or slower than its own timeout while the
   * budget lasted), which tells the caller that trying again may help.
   */
  function ordersOrKeptCopy(key: OrdersPageKey, result: GuardedResult<ListOrdersResponse>) {
    if (result.ok) {
      staleOrders.keep(key, result.value);
      return { page: result.value };
    }
    const failure = result.error;
    const kept = staleOrders.find(key);
    if (!kept) {
      if (failure.code === Code.DeadlineExceeded && result.budgetLimited) {
        throw new ConnectError(
          `the call's time ran out (its deadline, or the default budget when it set none) before orders answered (${failure.rawMessage}) and no recent copy of this page is kept`,
          Code.DeadlineExceeded,
        );
      }
      throw new ConnectError(
        `orders failed with ${statusName(failure.code)} (${failure.rawMessage}) and no recent copy of this page is kept`,
        Code.Unavailable,
      );
    }
    const stale = { fetchTime: timestampFromMs(kept.fetchedAt), age: durationFromMillis(Date.now() - kept.fetchedAt) };
    return { page: kept.page, failure, stale };
  }

  /**
   * The products among `ids`, asked in as few BatchGetProducts calls as the
   * batch limit allows (or in `productsShards` calls), sent in parallel. Products found by the calls that
   * succeeded are kept even when another call failed.
   */
  async function productDetails(
    ids: string[],
    batchGet: (ids: string[], call: DownstreamCall) => Promise<{ products: Product[] }>,
    budget: CallBudget,
    signal: AbortSignal,
  ): Promise<{ products: Product[]; failure?: ConnectError; timing: CallTiming }> {
    const chunks: string[][] = [];
    const shards = Math.min(settings.productsShards ?? 1, ids.length);
    if (shards > 1 && ids.length <= shards * maxBatchProducts) {
      // productsShards calls (at most one per id), the ids spread evenly.
      for (let i = 0; i < shards; i++)
        chunks.push(ids.slice(Math.floor((i * ids.length) / shards), Math.floor(((i + 1) * ids.length) / shards)));
    } else {
      for (let i = 0; i < ids.length; i += maxBatchProducts) chunks.push(ids.slice(i, i + maxBatchProducts));
    }
    const results = (
      await Promise.all(
        chunks.map((chunk) =>
          guards.products.call(
            ProductsService.method.batchGetProducts,
            (call) => batchGet(chunk, call),
            budget,
            signal,
          ),
        ),
      )
    ).map((result) => throwCallerFault("products", result));
    return {
      products: results.flatMap((result) => (result.ok ? result.value.products : [])),
      failure: results.find((result) => !result.ok)?.error,
      timing: mergeTimings(results.map((result) => result.timing)),
    };
  }

  return {
    view,
    breakerStates: () => ({ users: guards.users.state, orders: guards.orders.state, products: guards.products.state }),
  };
}

/**
 * Failures that answer the caller's question rather than report an outage
 * are passed on with their own code instead of being degraded around (and
 * they never count towards a breaker): PERMISSION_DENIED and UNAUTHENTICATED
 * from any dependency are about the caller's token; NOT_FOUND from users
 * means the user does not exist; INVALID_ARGUMENT from users or orders is
 * about what the caller sent (a page token orders did not issue, say).
 * products is asked only about ids we took from orders, so its NOT_FOUND or
 * INVALID_ARGUMENT is not the caller's doing and degrades like an outage.
 */
function throwCallerFault<T>(dependency: DependencyName, result: GuardedResult<T>): GuardedResult<T> {
  if (result.ok) return result;
  const { code, rawMessage } = result.error;
  if (code === Code.PermissionDenied || code === Code.Unauthenticated) {
    throw new ConnectError(`${dependency} refused the call: ${rawMessage}`, code);
  }
  if (dependency !== "products" && (code === Code.NotFound || code === Code.InvalidArgument)) {
    throw new ConnectError(rawMessage, code);
  }
  return result;
}

function mergeTimings(parts: CallTiming[]): CallTiming {
  const failed = parts.find((part) => part.code !== "OK");
  const timeouts = parts.flatMap((part) => (part.timeoutMs === undefined ? [] : [part.timeoutMs]));
  return {
    attempts: parts.reduce((sum, part) => sum + part.attempts, 0),
    hedges: parts.reduce((sum, part) => sum + part.hedges, 0),
    durationMs: Math.max(...parts.map((part) => part.durationMs)),
    code: failed?.code ?? "OK",
    timeoutMs: timeouts.length > 0 ? Math.max(...timeouts) : undefined,
  };
}

function toTiming(dependency: DependencyName, timing: CallTiming): MessageInitShape<typeof DependencyTimingSchema> {
  return {
    dependency: dependencyEnum[dependency],
    duration: durationFromMillis(timing.durationMs),
    attempts: timing.attempts,
    hedges: timing.hedges,
    code: timing.code,
    timeout: timing.timeoutMs === undefined ? undefined : durationFromMillis(timing.timeoutMs),
  };
}

/** A Duration from fractional milliseconds, kept to whole nanoseconds as the message requires. */
export function durationFromMillis(ms: number): Duration {
  const total = Math.max(0, Math.round(ms * 1_000_000));
  return create(DurationSchema, { seconds: BigInt(Math.floor(total / 1e9)), nanos: total % 1e9 });
}
