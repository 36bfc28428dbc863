import { describe, expect, it } from "vitest";
import { ScrapeHistory } from "../src/server/mesh-summary.js";
import { parsePrometheusText } from "@shopmesh/cli";

/** user-orders' metrics with `ok` and `failed` calls to products, spread over the buckets given. */
function userOrders(buckets: Record<string, number>, ok: number, failed: number, breaker = "closed") {
  const lines = Object.entries(buckets).map(
    ([le, count]) => `rpc_client_duration_seconds_bucket{dependency="products",le="${le}"} ${count}`,
  );
  lines.push(`rpc_client_duration_seconds_count{dependency="products",rpc_grpc_status_code="0"} ${ok}`);
  lines.push(`rpc_client_duration_seconds_count{dependency="products",rpc_grpc_status_code="4"} ${failed}`);
  for (const state of ["closed", "open", "half-open"])
    lines.push(`shopmesh_circuit_breaker_state{dependency="products",state="${state}"} ${state === breaker ? 1 : 0}`);
  lines.push('shopmesh_projection_lag_events{stream="orders"} 7');
  lines.push('shopmesh_projection_connected{stream="orders"} 1');
  return parsePrometheusText(lines.join("\n"));
}

describe("ScrapeHistory", () => {
  it("computes an edge's rate, error share and p99 over the window, and reads breakers and stream lag", () => {
    const history = new ScrapeHistory(5000);
    history.add({ service: "user-orders", atMs: 0, samples: userOrders({ "0.01": 10, "1": 10, "+Inf": 10 }, 10, 0) });
    history.add({
      service: "user-orders",
      atMs: 2000,
      samples: userOrders({ "0.01": 100, "1": 110, "+Inf": 110 }, 95, 15, "open"),
    });
    const products = history.edges().find((e) => e.from === "user-orders" && e.to === "products")!;
    expect(products.ratePerSecond).toBe(50);
    expect(products.errorShare).toBe(0.15);
    // 100 new calls: 90 under 10 ms, 10 under 1 s, so the 99th is in the 1 s bucket.
    expect(products.p99Ms).toBe(1000);
    expect(products.breaker).toBe("open");
    expect(history.streams()).toEqual([{ stream: "orders", lagEvents: 7, connected: true }]);
  });

  it("shows a service whose scrape failed as down, and has no rates before a second scrape", () => {
    const history = new ScrapeHistory(5000);
    history.add({ service: "products", atMs: 0, error: "connect ECONNREFUSED" });
    history.add({ service: "user-orders", atMs: 0, samples: userOrders({ "+Inf": 1 }, 1, 0) });
    const [products, userOrdersState] = history.services(["products", "user-orders"]);
    expect(products).toMatchObject({ up: false, problem: "connect ECONNREFUSED" });
    expect(userOrdersState).toMatchObject({ up: true, callsPerSecond: null });
    expect(history.edges().find((e) => e.to === "products" && e.from === "user-orders")?.ratePerSecond).toBeNull();
  });

  it("compares with the oldest scrape inside the window only", () => {
    const history = new ScrapeHistory(1000);
    for (const [atMs, ok] of [
      [0, 0],
      [1000, 1000],
      [2000, 1010],
    ] as const) {
      history.add({ service: "user-orders", atMs, samples: userOrders({ "+Inf": ok }, ok, 0) });
    }
    expect(history.edges().find((e) => e.to === "products" && e.from === "user-orders")?.ratePerSecond).toBe(10);
  });
});
