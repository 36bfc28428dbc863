import { describe, expect, it } from "vitest";
import { ConfigError } from "@shopmesh/chassis";
import { readAggregatorSettings, readDependencyTargets } from "../src/settings.js";

describe("settings", () => {
  it("has documented defaults", () => {
    expect(readDependencyTargets({})).toEqual({
      users: "127.0.0.1:50051",
      orders: "127.0.0.1:50053",
      products: "127.0.0.1:50052",
    });
    expect(readAggregatorSettings({})).toEqual({
      defaultBudgetMs: 1000,
      reserveMs: 15,
      dependencies: {
        users: { timeoutMs: 300, hedgeDelayMs: undefined },
        orders: { timeoutMs: 500, hedgeDelayMs: undefined },
        products: { timeoutMs: 300, hedgeDelayMs: undefined },
      },
      breaker: { failures: 5, cooldownMs: 2000 },
      retry: { retries: 2, baseDelayMs: 20, maxDelayMs: 200 },
      staleOrders: { maxEntries: 1000, maxAgeMs: 300_000 },
    });
  });

  it("reads every variable", () => {
    const settings = readAggregatorSettings({
      USERS_TIMEOUT: "1s",
      ORDERS_TIMEOUT: "2s",
      PRODUCTS_TIMEOUT: "150",
      DEFAULT_BUDGET: "3s",
      DEADLINE_RESERVE: "5ms",
      BREAKER_FAILURES: "3",
      BREAKER_COOLDOWN: "500ms",
      RETRY_ATTEMPTS: "0",
      RETRY_BASE_DELAY: "10ms",
      RETRY_MAX_DELAY: "1s",
      HEDGE_PRODUCTS_DELAY: "50ms",
      STALE_CACHE_SIZE: "0",
      STALE_MAX_AGE: "1m",
    });
    expect(settings).toEqual({
      defaultBudgetMs: 3000,
      reserveMs: 5,
      dependencies: {
        users: { timeoutMs: 1000, hedgeDelayMs: undefined },
        orders: { timeoutMs: 2000, hedgeDelayMs: undefined },
        products: { timeoutMs: 150, hedgeDelayMs: 50 },
      },
      breaker: { failures: 3, cooldownMs: 500 },
      retry: { retries: 0, baseDelayMs: 10, maxDelayMs: 1000 },
      staleOrders: { maxEntries: 0, maxAgeMs: 60_000 },
    });
  });

  it.each([
    ["USERS_TIMEOUT", "0"],
    ["HEDGE_USERS_DELAY", "soon"],
    ["BREAKER_FAILURES", "0"],
    ["RETRY_ATTEMPTS", "-1"],
  ])("names a bad %s", (name, value) => {
    expect(() => readAggregatorSettings({ [name]: value })).toThrow(ConfigError);
    expect(() => readAggregatorSettings({ [name]: value })).toThrow(new RegExp(`^${name}=`));
  });

  it("takes a grpc-js scheme in a target only with grpc-js's client", () => {
    const env = { USERS_TARGET: "dns:///users.internal:50051", ORDERS_TARGET: "[::1]:50053" };
    expect(readDependencyTargets(env)).toEqual({
      users: "dns:///users.internal:50051",
      orders: "[::1]:50053",
      products: "127.0.0.1:50052",
    });
    expect(
      readDependencyTargets({ ...env, USERS_TARGET: "users.internal:50051", DEPENDENCY_CLIENT: "connect-node" }),
    ).toEqual({
      users: "users.internal:50051",
      orders: "[::1]:50053",
      products: "127.0.0.1:50052",
    });
    expect(() => readDependencyTargets({ ...env, DEPENDENCY_CLIENT: "connect-node" })).toThrow(
      'USERS_TARGET="dns:///users.internal:50051" is not valid: expected host:port, such as "127.0.0.1:50051", with DEPENDENCY_CLIENT=connect-node (its client takes no scheme)',
    );
  });
});
