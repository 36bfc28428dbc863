// The aggregation against in-memory users, orders and products: what the
// view holds, how it degrades, and how deadlines, the circuit breaker,
// retries and hedging behave, all without a process or a port.
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it, vi } from "vitest";
import { durationMs, timestampMs, type Duration } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { Dependency, Fallback, type GetUserOrdersResponse } from "@shopmesh/sdk/userorders/v1";
import { createUserOrdersAggregator, type AggregatorSettings, type ViewRequest } from "../src/aggregate.js";
import { failure } from "../../../test/support/failure.js";
import {
  answer,
  delay,
  fail,
  fakeDependencies,
  hang,
  makeOrder,
  makeProduct,
  makeUser,
  recordingLog,
  testSettings,
  until,
  type World,
} from "./support/fake-dependencies.js";

const tea = makeProduct("Tea", 450n);
const mug = makeProduct("Mug", 1200n);
const spoon = makeProduct("Spoon", 199n);
const pot = makeProduct("Pot", 2500n);
const catalog = [tea, mug, spoon, pot];

function world(orderCount = 2): World {
  const user = makeUser();
  const orders = Array.from({ length: orderCount }, (_, i) =>
    makeOrder(user.id, [
      { product: catalog[i % 4]!, quantity: i + 1 },
      { product: catalog[(i + 1) % 4]!, quantity: 1 },
    ]),
  );
  return { users: [user], orders, products: catalog };
}

function setup(data: World = world(), settings: AggregatorSettings = testSettings()) {
  const fakes = fakeDependencies(data);
  const log = recordingLog();
  const aggregator = createUserOrdersAggregator({ ...fakes.clients, settings, log });
  const userId = data.users[0]?.id ?? "";
  const view = (overrides: Partial<ViewRequest> = {}) =>
    aggregator.view({
      userId,
      pageSize: 20,
      pageToken: "",
      authorization: "Bearer caller-token",
      timeoutMs: undefined,
      signal: new AbortController().signal,
      ...overrides,
    });
  return { ...fakes, aggregator, log, view, data, userId };
}

/**
 * Timers and in-memory dispatch run late on a busy two-core machine: bounds
 * on elapsed wall time allow this much. Bounds on the deadlines handed to the
 * fakes need none, since lateness only shrinks them.
 */
const slackMs = 100;

const timingOf = (view: GetUserOrdersResponse, dependency: Dependency) =>
  view.timings.find((t) => t.dependency === dependency)!;
const ms = (duration: Duration | undefined) => durationMs(duration!);

describe("a full view", () => {
  it("holds the profile and the orders with product details, forwards the token, and times each dependency", async () => {
    const { view, scripts, data } = setup();
    const result = await view();
    const user = data.users[0]!;
    expect(result.profile).toMatchObject({ userId: user.id, email: user.email, displayName: user.displayName });
    expect(result.orders.map((o) => o.orderId)).toEqual(data.orders.map((o) => o.id));
    const firstLine = result.orders[0]!.lines[0]!;
    expect(firstLine).toMatchObject({ productId: tea.id, quantity: 1, unitPrice: tea.price });
    expect(firstLine.product).toMatchObject({ name: "Tea", description: tea.description, currentPrice: tea.price });
    expect(result.orders[0]!.total).toEqual(data.orders[0]!.total);
    expect(result.degradations).toEqual([]);
    expect(result.staleOrders).toBeUndefined();
    expect(result.timings.map((t) => [t.dependency, t.code, t.attempts, t.hedges])).toEqual([
      [Dependency.USERS, "OK", 1, 0],
      [Dependency.ORDERS, "OK", 1, 0],
      [Dependency.PRODUCTS, "OK", 1, 0],
    ]);
    for (const timing of result.timings) {
      expect(ms(timing.timeout)).toBeGreaterThan(0);
      expect(ms(timing.timeout)).toBeLessThanOrEqual(500);
    }
    for (const script of Object.values(scripts))
      expect(script.calls.map((c) => c.authorization)).toEqual(["Bearer caller-token"]);
  });

  it("calls users and orders in parallel, then products", async () => {
    const { view, scripts } = setup();
    scripts.users.andThen(delay(100));
    scripts.orders.andThen(delay(100));
    await view();
    const [user, orders, products] = [scripts.users.calls[0]!, scripts.orders.calls[0]!, scripts.products.calls[0]!];
    expect(Math.abs(user.at - orders.at)).toBeLessThan(50);
    expect(products.at).toBeGreaterThanOrEqual(Math.max(user.at, orders.at) + 95);
  });

  it("asks products once for every distinct product of many orders", async () => {
    const { view, scripts } = setup(world(30));
    const result = await view({ pageSize: 30 });
    expect(result.orders).toHaveLength(30);
    expect(scripts.products.calls).toHaveLength(1);
    const asked = (scripts.products.calls[0]!.request as { productIds: string[] }).productIds;
    expect([...asked].sort()).toEqual(catalog.map((p) => p.id).sort());
    expect(result.orders.every((o) => o.lines.every((l) => l.product !== undefined))).toBe(true);
  });

  it("does not call products when there are no lines", async () => {
    const { view, scripts } = setup({ ...world(0) });
    const result = await view();
    expect(result.orders).toEqual([]);
    expect(scripts.products.calls).toHaveLength(0);
    expect(result.timings.map((t) => t.dependency)).toEqual([Dependency.USERS, Dependency.ORDERS]);
  });

  it("refuses a page whose view would be over 4 MiB with RESOURCE_EXHAUSTED naming page_size, and builds one just under", async () => {
    const user = makeUser();
    const wordy = makeProduct("Wordy", 100n);
    wordy.description = "w".repeat(2_000);
    const accented = makeProduct("Accented", 100n);
    accented.description = "é".repeat(2_000);
    const ordersOf = (count: number, product: typeof wordy) =>
      Array.from({ length: count }, () =>
        makeOrder(
          user.id,
          Array.from({ length: 100 }, () => ({ product, quantity: 1 })),
        ),
      );
    // 1,900 lines of 2,000 one-byte characters: about 4.0 MB, under 4 MiB, though three bytes a character would not be.
    const under = setup({ users: [user], orders: ordersOf(19, wordy), products: [wordy] });
    expect((await under.view({ pageSize: 100 })).orders).toHaveLength(19);
    const over = setup({ users: [user], orders: ordersOf(21, wordy), products: [wordy] });
    const error = await failure(over.view({ pageSize: 100 }));
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.rawMessage).toMatch(
      /^page_size: the view of these 21 orders would take about 4\.\d MiB, over the 4 MiB/,
    );
    // Two bytes a character: 1,100 such lines are over.
    const twoByte = setup({ users: [user], orders: ordersOf(11, accented), products: [accented] });
    expect((await failure(twoByte.view({ pageSize: 100 }))).code).toBe(Code.ResourceExhausted);
  });

  it("asks for more than 500 products in parallel batches of at most 500, reported as one timing", async () => {
    const user = makeUser();
    const many = Array.from({ length: 750 }, (_, i) => makeProduct(`P${i}`, 100n));
    const orders = [0, 1, 2].map((o) =>
      makeOrder(
        user.id,
        many.slice(o * 250, o * 250 + 250).map((product) => ({ product, quantity: 1 })),
      ),
    );
    const { view, scripts } = setup({ users: [user], orders, products: many });
    const result = await view();
    expect(scripts.products.calls.map((c) => (c.request as { productIds: string[] }).productIds.length)).toEqual([
      500, 250,
    ]);
    expect(result.orders.flatMap((o) => o.lines).every((l) => l.product?.name.startsWith("P") === true)).toBe(true);
    expect(result.timings.filter((t) => t.dependency === Dependency.PRODUCTS).map((t) => t.attempts)).toEqual([2]);
  });

  it("with FAN_OUT=sequential calls users, then orders, then products, one after another", async () => {
    const { view, scripts } = setup(world(), { ...testSettings(), fanOut: "sequential" });
    scripts.users.andThen(delay(100));
    scripts.orders.andThen(delay(100));
    const result = await view();
    const [user, orders, products] = [scripts.users.calls[0]!, scripts.orders.calls[0]!, scripts.products.calls[0]!];
    expect(orders.at).toBeGreaterThanOrEqual(user.at + 95);
    expect(products.at).toBeGreaterThanOrEqual(orders.at + 95);
    expect(result.degradations).toEqual([]);
  });

  it("with PRODUCTS_SHARDS=k splits the product ids evenly over k parallel calls", async () => {
    const { view, scripts } = setup(world(4), { ...testSettings(), productsShards: 3 });
    const result = await view();
    const asked = scripts.products.calls.map((c) => (c.request as { productIds: string[] }).productIds);
    expect(asked.map((ids) => ids.length).sort()).toEqual([1, 1, 2]);
    expect(asked.flat().sort()).toEqual(catalog.map((p) => p.id).sort());
    expect(result.orders.every((o) => o.lines.every((l) => l.product !== undefined))).toBe(true);
    expect(timingOf(result, Dependency.PRODUCTS).attempts).toBe(3);
  });

  it("keeps a line whose product is gone from the catalog, without details and without a degradation", async () => {
    const data = world(1);
    const { view } = setup({ ...data, products: [mug] });
    const result = await view();
    expect(result.orders[0]!.lines.map((l) => [l.productId, l.product?.name])).toEqual([
      [tea.id, undefined],
      [mug.id, "Mug"],
    ]);
    expect(result.degradations).toEqual([]);
  });

  it("passes page size and token to orders and returns its next page token", async () => {
    const { view, scripts } = setup(world(5));
    const first = await view({ pageSize: 2 });
    expect(first.orders).toHaveLength(2);
    const second = await view({ pageSize: 2, pageToken: first.nextPageToken! });
    expect(scripts.orders.calls.map((c) => c.request)).toMatchObject([
      { pageSize: 2, pageToken: "" },
      { pageSize: 2, pageToken: "2" },
    ]);
    expect(second.orders.map((o) => o.orderId)).not.toContain(first.orders[0]!.orderId);
  });
});

describe("fallbacks", () => {
  it("without users: no profile, a degradation, and the orders still in full", async () => {
    const { view, scripts } = setup();
    scripts.users.always(fail(Code.Unavailable));
    const result = await view();
    expect(result.profile).toBeUndefined();
    expect(result.degradations).toMatchObject([
      {
        dependency: Dependency.USERS,
        code: "UNAVAILABLE",
        fallback: Fallback.NO_PROFILE,
        message: "scripted Unavailable",
      },
    ]);
    expect(result.orders).toHaveLength(2);
    expect(result.orders[0]!.lines[0]!.product?.name).toBe("Tea");
    expect(timingOf(result, Dependency.USERS)).toMatchObject({ code: "UNAVAILABLE", attempts: 1 });
  });

  it("without products: lines keep id, quantity and price paid, with no details", async () => {
    const { view, scripts, data } = setup();
    scripts.products.always(fail(Code.Internal));
    const result = await view();
    expect(result.profile?.userId).toBe(data.users[0]!.id);
    expect(result.orders[0]!.lines.map((l) => [l.productId, l.quantity, l.unitPrice, l.product])).toEqual(
      data.orders[0]!.lines.map((l) => [l.productId, l.quantity, l.unitPrice, undefined]),
    );
    expect(result.degradations).toMatchObject([
      { dependency: Dependency.PRODUCTS, code: "INTERNAL", fallback: Fallback.NO_PRODUCT_DETAILS },
    ]);
  });

  it("without orders and no kept copy: UNAVAILABLE naming orders and its code", async () => {
    const { view, scripts } = setup(world(), testSettings({ staleOrders: { maxEntries: 10, maxAgeMs: 60_000 } }));
    scripts.orders.always(fail(Code.Internal));
    const error = await failure(view());
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toMatch(/^orders failed with INTERNAL/);
    expect(scripts.products.calls).toHaveLength(0);
  });

  it("without orders after one good answer: the kept copy, marked with its fetch time and age", async () => {
    const { view, scripts } = setup(world(), testSettings({ staleOrders: { maxEntries: 10, maxAgeMs: 60_000 } }));
    const before = Date.now();
    const fresh = await view();
    const afterFresh = Date.now();
    await sleep(50);
    scripts.orders.always(fail(Code.Unavailable));
    const stale = await view();
    expect(stale.orders).toEqual(fresh.orders);
    expect(stale.profile).toEqual(fresh.profile);
    expect(stale.degradations).toMatchObject([
      { dependency: Dependency.ORDERS, code: "UNAVAILABLE", fallback: Fallback.STALE_ORDERS },
    ]);
    const fetched = timestampMs(stale.staleOrders!.fetchTime!);
    expect(fetched).toBeGreaterThanOrEqual(before);
    expect(fetched).toBeLessThanOrEqual(afterFresh);
    expect(ms(stale.staleOrders!.age)).toBeGreaterThanOrEqual(45);
    // The copy answers only the same question: another page size has none.
    expect((await failure(view({ pageSize: 5 }))).code).toBe(Code.Unavailable);
  });

  it("does not serve a kept copy older than the maximum age", async () => {
    const { view, scripts } = setup(world(), testSettings({ staleOrders: { maxEntries: 10, maxAgeMs: 50 } }));
    await view();
    await sleep(80);
    scripts.orders.always(fail(Code.Unavailable));
    expect((await failure(view())).code).toBe(Code.Unavailable);
  });

  it("answers NOT_FOUND for an unknown user and cancels the orders call still in flight", async () => {
    const { view, scripts } = setup({ users: [], orders: [], products: catalog });
    scripts.orders.andThen(hang);
    const started = performance.now();
    const error = await failure(view({ userId: makeUser().id }));
    expect(error.code).toBe(Code.NotFound);
    expect(performance.now() - started).toBeLessThan(300 + slackMs);
    await vi.waitFor(() => expect(scripts.orders.calls[0]!.signal.aborted).toBe(true), { timeout: 150 });
  });

  it("passes PERMISSION_DENIED from a dependency on, serves no kept copy for it, and does not count it as an outage", async () => {
    const settings = testSettings({
      staleOrders: { maxEntries: 10, maxAgeMs: 60_000 },
      breaker: { failures: 2, cooldownMs: 5000 },
    });
    const { view, scripts, aggregator } = setup(world(), settings);
    await view();
    scripts.orders.always(fail(Code.PermissionDenied));
    for (let i = 0; i < 3; i++) {
      const error = await failure(view());
      expect(error.code).toBe(Code.PermissionDenied);
      expect(error.rawMessage).toMatch(/^orders refused the call/);
    }
    expect(aggregator.breakerStates().orders).toBe("closed");
  });

  it("passes INVALID_ARGUMENT for a page token orders did not issue", async () => {
    const { view } = setup();
    const error = await failure(view({ pageToken: "not-a-number" }));
    expect([error.code, error.rawMessage.split(":")[0]]).toEqual([Code.InvalidArgument, "page_token"]);
  });
});

describe("deadlines", () => {
  it("returns before the caller's deadline when products hangs, and gave products no more than the budget left", async () => {
    const settings = testSettings({
      dependencies: { users: { timeoutMs: 5000 }, orders: { timeoutMs: 5000 }, products: { timeoutMs: 5000 } },
    });
    const { view, scripts } = setup(world(), settings);
    scripts.users.andThen(delay(100));
    scripts.orders.andThen(delay(100));
    scripts.products.always(hang);
    const started = performance.now();
    const result = await view({ timeoutMs: 400 });
    const elapsed = performance.now() - started;
    expect(elapsed).toBeLessThan(400 + slackMs);
    expect(elapsed).toBeGreaterThan(300);
    expect(result.degradations).toMatchObject([
      { dependency: Dependency.PRODUCTS, code: "DEADLINE_EXCEEDED", fallback: Fallback.NO_PRODUCT_DETAILS },
    ]);
    // products went out at least 100ms in, so it had at most 400 - 100 - reserve.
    const seen = scripts.products.calls[0]!;
    expect(seen.timeoutMs).toBeLessThanOrEqual(400 - 100 - settings.reserveMs);
    expect(ms(timingOf(result, Dependency.PRODUCTS).timeout)).toBeLessThanOrEqual(400 - 100 - settings.reserveMs);
    await vi.waitFor(() => expect(seen.signal.aborted).toBe(true));
  });

  it("caps every call at its own timeout when the budget is larger", async () => {
    const settings = testSettings({
      dependencies: { users: { timeoutMs: 80 }, orders: { timeoutMs: 500 }, products: { timeoutMs: 500 } },
    });
    const { view, scripts } = setup(world(), settings);
    scripts.users.always(hang);
    const started = performance.now();
    const result = await view({ timeoutMs: 5000 });
    expect(performance.now() - started).toBeLessThan(80 + slackMs);
    expect(scripts.users.calls[0]!.timeoutMs).toBeLessThanOrEqual(80);
    expect(result.degradations).toMatchObject([{ dependency: Dependency.USERS, code: "DEADLINE_EXCEEDED" }]);
    expect(ms(timingOf(result, Dependency.USERS).timeout)).toBe(80);
  });

  it("applies the default budget when the caller set no deadline", async () => {
    const settings = testSettings({
      defaultBudgetMs: 250,
      dependencies: { users: { timeoutMs: 5000 }, orders: { timeoutMs: 5000 }, products: { timeoutMs: 5000 } },
    });
    const { view, scripts } = setup(world(), settings);
    scripts.products.always(hang);
    const started = performance.now();
    const result = await view({ timeoutMs: undefined });
    expect(performance.now() - started).toBeLessThan(250 + slackMs);
    expect(scripts.products.calls[0]!.timeoutMs).toBeLessThanOrEqual(250 - settings.reserveMs);
    expect(result.degradations).toMatchObject([{ dependency: Dependency.PRODUCTS, code: "DEADLINE_EXCEEDED" }]);
  });

  it("counts the default budget from the call's arrival: the time it waited for admission is taken off", async () => {
    const settings = testSettings({
      defaultBudgetMs: 1000,
      dependencies: { users: { timeoutMs: 5000 }, orders: { timeoutMs: 5000 }, products: { timeoutMs: 5000 } },
    });
    const { view, scripts } = setup(world(), settings);
    await view({ timeoutMs: undefined, waitedMs: 700 });
    for (const dependency of ["users", "orders", "products"] as const) {
      expect(scripts[dependency].calls[0]!.timeoutMs).toBeLessThanOrEqual(300 - settings.reserveMs);
    }
  });

  it("does not call at all when no time is left, and answers DEADLINE_EXCEEDED, not UNAVAILABLE", async () => {
    const { view, scripts } = setup(world(), testSettings({ reserveMs: 15 }));
    for (const timeoutMs of [0.5, 1, 5, 10]) {
      const error = await failure(view({ timeoutMs }));
      expect([timeoutMs, error.code]).toEqual([timeoutMs, Code.DeadlineExceeded]);
      expect(error.rawMessage).toMatch(
        /^the call's time ran out \(its deadline, or the default budget when it set none\) before orders answered \(orders was not called/,
      );
    }
    expect(scripts.users.calls).toHaveLength(0);
    expect(scripts.orders.calls).toHaveLength(0);
  });

  it("answers DEADLINE_EXCEEDED when orders was given what was left of the caller's budget and did not answer in it", async () => {
    const settings = testSettings({
      reserveMs: 15,
      dependencies: { users: { timeoutMs: 500 }, orders: { timeoutMs: 500 }, products: { timeoutMs: 500 } },
    });
    const { view, scripts } = setup(world(), settings);
    scripts.orders.always(hang);
    const error = await failure(view({ timeoutMs: 100 }));
    expect(error.code).toBe(Code.DeadlineExceeded);
    expect(error.rawMessage).toMatch(
      /^the call's time ran out \(its deadline, or the default budget when it set none\) before orders answered/,
    );
    expect(scripts.orders.calls[0]!.timeoutMs).toBeLessThanOrEqual(100 - settings.reserveMs);
  });

  it("stays UNAVAILABLE when orders ran out its own timeout while the caller's budget lasted", async () => {
    const settings = testSettings({
      dependencies: { users: { timeoutMs: 500 }, orders: { timeoutMs: 60 }, products: { timeoutMs: 500 } },
    });
    const { view, scripts } = setup(world(), settings);
    scripts.orders.always(hang);
    const error = await failure(view({ timeoutMs: 2000 }));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toMatch(/^orders failed with DEADLINE_EXCEEDED/);
  });

  it("serves the kept copy rather than DEADLINE_EXCEEDED when the caller's budget runs out", async () => {
    const { view, scripts } = setup(
      world(),
      testSettings({ reserveMs: 15, staleOrders: { maxEntries: 10, maxAgeMs: 60_000 } }),
    );
    const fresh = await view();
    const stale = await view({ timeoutMs: 5 });
    expect(stale.orders.map((o) => o.orderId)).toEqual(fresh.orders.map((o) => o.orderId));
    expect(stale.staleOrders).toBeDefined();
    expect(stale.degradations).toContainEqual(
      expect.objectContaining({ dependency: Dependency.ORDERS, code: "DEADLINE_EXCEEDED" }),
    );
    expect(scripts.orders.calls).toHaveLength(1);
  });

  it("leaves products a degradation, not a call, when users and orders used up the budget", async () => {
    const settings = testSettings({
      reserveMs: 15,
      dependencies: { users: { timeoutMs: 100 }, orders: { timeoutMs: 500 }, products: { timeoutMs: 500 } },
    });
    const { view, scripts } = setup(world(), settings);
    scripts.users.always(hang);
    // users takes its whole 100ms, which leaves products nothing of 115ms less the reserve.
    const result = await view({ timeoutMs: 115 });
    expect(scripts.products.calls).toHaveLength(0);
    expect(result.degradations).toMatchObject([
      { dependency: Dependency.USERS, code: "DEADLINE_EXCEEDED" },
      {
        dependency: Dependency.PRODUCTS,
        code: "DEADLINE_EXCEEDED",
        message: expect.stringMatching(/^products was not called/),
      },
    ]);
    expect(timingOf(result, Dependency.PRODUCTS)).toMatchObject({ attempts: 0, code: "DEADLINE_EXCEEDED" });
    expect(timingOf(result, Dependency.PRODUCTS).timeout).toBeUndefined();
  });
});

describe("circuit breaker", () => {
  const breakerSettings = () => testSettings({ breaker: { failures: 3, cooldownMs: 200 } });

  it("opens after consecutive failures, then answers at once without calling, and closes after the cool-down", async () => {
    const { view, scripts, aggregator, log } = setup(world(), breakerSettings());
    scripts.users.always(fail(Code.Unavailable));
    for (let i = 0; i < 3; i++) await view();
    expect(aggregator.breakerStates().users).toBe("open");
    expect(scripts.users.calls).toHaveLength(3);

    scripts.users.always(hang);
    const started = performance.now();
    const refused = await view();
    expect(performance.now() - started).toBeLessThan(500 - slackMs);
    expect(scripts.users.calls).toHaveLength(3);
    expect(refused.degradations).toMatchObject([
      { dependency: Dependency.USERS, code: "UNAVAILABLE", fallback: Fallback.NO_PROFILE },
    ]);
    expect(refused.degradations[0]!.message).toMatch(/circuit breaker for users is open/);
    expect(timingOf(refused, Dependency.USERS)).toMatchObject({ attempts: 0, code: "UNAVAILABLE" });
    expect(timingOf(refused, Dependency.USERS).timeout).toBeUndefined();

    await sleep(250);
    scripts.users.always(answer);
    const healed = await view();
    expect(healed.degradations).toEqual([]);
    expect(scripts.users.calls).toHaveLength(4);
    expect(aggregator.breakerStates().users).toBe("closed");
    expect(log.entries.map((e) => [e.level, e.fields])).toEqual([
      ["warn", { dependency: "users", state: "open" }],
      ["warn", { dependency: "users", state: "half-open" }],
      ["info", { dependency: "users", state: "closed" }],
    ]);
  });

  it("lets one probe through when half-open and refuses the others at once", async () => {
    const { view, scripts, aggregator } = setup(world(), breakerSettings());
    scripts.products.always(fail(Code.Unavailable));
    for (let i = 0; i < 3; i++) await view();
    await sleep(250);
    let release!: () => void;
    scripts.products.always(until(new Promise<void>((resolve) => (release = resolve))));
    let probed = false;
    const probe = view().finally(() => (probed = true));
    await vi.waitFor(() => expect(scripts.products.calls).toHaveLength(4));
    const other = await view();
    expect(probed).toBe(false);
    release();
    expect(other.degradations[0]!.message).toMatch(/half-open/);
    expect((await probe).degradations).toEqual([]);
    expect(aggregator.breakerStates().products).toBe("closed");
    expect(scripts.products.calls).toHaveLength(4);
  });

  it("opens again when the probe fails", async () => {
    const { view, scripts, aggregator } = setup(world(), breakerSettings());
    scripts.users.always(fail(Code.Unavailable));
    for (let i = 0; i < 3; i++) await view();
    await sleep(250);
    await view();
    expect(scripts.users.calls).toHaveLength(4);
    expect(aggregator.breakerStates().users).toBe("open");
  });

  it("does not blame a dependency for a timeout that the caller's short deadline caused", async () => {
    const settings = testSettings({
      breaker: { failures: 3, cooldownMs: 5000 },
      dependencies: { users: { timeoutMs: 300 }, orders: { timeoutMs: 500 }, products: { timeoutMs: 500 } },
    });
    const { view, scripts, aggregator } = setup(world(), settings);
    scripts.users.always(hang);
    // Room enough for orders to answer on a busy machine, but short of users' own timeout.
    for (let i = 0; i < 3; i++) await view({ timeoutMs: 200 });
    expect(aggregator.breakerStates().users).toBe("closed");
    for (let i = 0; i < 3; i++) await view({ timeoutMs: 1000 });
    expect(aggregator.breakerStates().users).toBe("open");
  });
});

describe("retries", () => {
  const retrySettings = (overrides: Partial<AggregatorSettings> = {}) =>
    testSettings({ retry: { retries: 2, baseDelayMs: 10, maxDelayMs: 50 }, ...overrides });

  it("recover a dependency that fails once with UNAVAILABLE", async () => {
    const { view, scripts } = setup(world(), retrySettings());
    scripts.users.andThen(fail(Code.Unavailable));
    const result = await view();
    expect(result.degradations).toEqual([]);
    expect(result.profile).toBeDefined();
    expect(timingOf(result, Dependency.USERS)).toMatchObject({ attempts: 2, hedges: 0, code: "OK" });
    const [first, second] = scripts.users.calls;
    expect(second!.timeoutMs).toBeLessThanOrEqual(first!.timeoutMs!);
  });

  it("are not made for INTERNAL", async () => {
    const { view, scripts } = setup(world(), retrySettings());
    scripts.users.andThen(fail(Code.Internal));
    const result = await view();
    expect(scripts.users.calls).toHaveLength(1);
    expect(result.degradations).toMatchObject([{ dependency: Dependency.USERS, code: "INTERNAL" }]);
    expect(timingOf(result, Dependency.USERS)).toMatchObject({ attempts: 1, code: "INTERNAL" });
  });

  it("stop at the budget when a dependency keeps failing", async () => {
    const settings = retrySettings({ retry: { retries: 10, baseDelayMs: 30, maxDelayMs: 60 } });
    const { view, scripts } = setup(world(), settings);
    scripts.users.always(fail(Code.Unavailable));
    const started = performance.now();
    const result = await view({ timeoutMs: 250 });
    expect(performance.now() - started).toBeLessThan(250 + slackMs);
    const attempts = scripts.users.calls.length;
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(attempts).toBeLessThan(11);
    expect(timingOf(result, Dependency.USERS)).toMatchObject({ attempts, code: "UNAVAILABLE" });
    for (const call of scripts.users.calls)
      expect(call.at - started + call.timeoutMs!).toBeLessThanOrEqual(250 - settings.reserveMs + slackMs);
  });
});

describe("hedging", () => {
  const hedgeSettings = () =>
    testSettings({
      dependencies: {
        users: { timeoutMs: 500 },
        orders: { timeoutMs: 500 },
        products: { timeoutMs: 500, hedgeDelayMs: 40 },
      },
    });

  it("sends a second request after the delay, takes its answer and cancels the slow one", async () => {
    const { view, scripts } = setup(world(), hedgeSettings());
    scripts.products.andThen(hang, answer);
    const started = performance.now();
    const result = await view();
    expect(performance.now() - started).toBeLessThan(500 - slackMs);
    expect(result.degradations).toEqual([]);
    expect(timingOf(result, Dependency.PRODUCTS)).toMatchObject({ attempts: 1, hedges: 1, code: "OK" });
    const [slow, hedge] = scripts.products.calls;
    expect(hedge!.at - slow!.at).toBeGreaterThanOrEqual(35);
    expect(hedge!.request).toEqual(slow!.request);
    expect(hedge!.timeoutMs).toBeLessThanOrEqual(slow!.timeoutMs!);
    await vi.waitFor(() => expect(slow!.signal.aborted).toBe(true), { timeout: 150 });
  });

  it("sends no second request when the answer comes first", async () => {
    const { view, scripts } = setup(world(), hedgeSettings());
    const result = await view();
    await sleep(60);
    expect(scripts.products.calls).toHaveLength(1);
    expect(timingOf(result, Dependency.PRODUCTS)).toMatchObject({ attempts: 1, hedges: 0 });
  });

  it("is off unless configured", async () => {
    const { view, scripts } = setup();
    scripts.products.andThen(delay(100));
    const result = await view();
    expect(scripts.products.calls).toHaveLength(1);
    expect(timingOf(result, Dependency.PRODUCTS).hedges).toBe(0);
  });
});

it("keeps the thrown error a ConnectError for the handler to send", async () => {
  const { view, scripts } = setup();
  scripts.orders.always(fail(Code.Unavailable));
  await expect(view()).rejects.toBeInstanceOf(ConnectError);
});
