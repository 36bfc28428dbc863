// A real Prometheus scrapes the four services of a mesh while views run and
// products hangs, loads the rules users are given (deploy/prometheus), and
// answers PromQL about what happened: the GetUserOrders rate, the products
// breaker's state, the degradations, the pending breaker alert.
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Client } from "@connectrpc/connect";
import { Dependency, type UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { adminToken, signUpCustomer, TestMesh, type ServiceName } from "../support/mesh.js";
import { prometheusProgram, spawnPrometheus, type PromSample, type TestPrometheus } from "../support/prometheus.js";

const rules = fileURLToPath(new URL("../../deploy/prometheus/shopmesh-rules.yml", import.meta.url));
const prometheus = prometheusProgram();
const services: ServiceName[] = ["users", "products", "orders", "user-orders"];
const healthyViews = 12;
const hungViews = 8;
const breakerFailures = 3;

const getUserOrders = 'service="user-orders",rpc_method="GetUserOrders"';
const single = (samples: PromSample[]) => (samples.length === 1 ? samples[0]!.value : Number.NaN);

describe.skipIf(prometheus.missing)("Prometheus scraping a mesh", { timeout: 90_000 }, () => {
  let mesh: TestMesh;
  let prom: TestPrometheus;
  let view: Client<typeof UserOrdersService>;
  let userId: string;
  let degraded = 0;

  beforeAll(async () => {
    const faults = { FAULT_INJECTION: "on" };
    mesh = await TestMesh.start(services, {
      users: faults,
      products: faults,
      orders: faults,
      "user-orders": {
        BREAKER_FAILURES: String(breakerFailures),
        // Open for the rest of the test once open.
        BREAKER_COOLDOWN: "10m",
        PRODUCTS_TIMEOUT: "300ms",
        HEDGE_PRODUCTS_DELAY: "100ms",
      },
    });
    const targets = Object.fromEntries(services.map((s) => [s, mesh.processes.get(s)!.metricsPort!]));
    prom = await spawnPrometheus({ targets, ruleFiles: [rules] });

    const admin = mesh.client("products", await adminToken(mesh));
    const ids: string[] = [];
    for (const name of ["Tea", "Mug"]) {
      ids.push((await admin.createProduct({ name, price: { currencyCode: "EUR", minorUnits: 500n } })).product!.id);
    }
    const customer = await signUpCustomer(mesh, "scraped");
    userId = customer.userId;
    await mesh.client("orders", customer.token).createOrder({
      requestId: "scraped-1",
      items: ids.map((productId) => ({ productId, quantity: 1 })),
    });
    view = mesh.client("user-orders", customer.token);

    // One view first, seen by Prometheus before the others: the series then
    // exists in two scrapes at least, with the other calls between, and has a rate.
    expect((await view.getUserOrders({ userId }, { timeoutMs: 2000 })).degradations).toEqual([]);
    await prom.waitFor(`sum(rpc_server_duration_seconds_count{${getUserOrders}})`, (samples) => single(samples) === 1);
    for (let i = 1; i < healthyViews; i++) {
      const response = await view.getUserOrders({ userId }, { timeoutMs: 2000 });
      expect(response.degradations).toEqual([]);
    }
    await mesh.faults("products").setFault({ fault: { method: "BatchGetProducts", hang: true } });
    for (let i = 0; i < hungViews; i++) {
      const response = await view.getUserOrders({ userId }, { timeoutMs: 1500 });
      if (response.degradations.some((d) => d.dependency === Dependency.PRODUCTS)) degraded++;
    }
  });
  afterAll(async () => {
    await prom?.stop();
    await mesh?.stop();
  });

  it("scrapes all four services", async () => {
    const up = await prom.waitFor('up{job="shopmesh"} == 1', (samples) => samples.length === services.length);
    expect(up.map((s) => s.metric.service).sort()).toEqual([...services].sort());
  });

  it("counts every GetUserOrders call and gives their rate", async () => {
    const selector = getUserOrders;
    const total = await prom.waitFor(
      `sum(rpc_server_duration_seconds_count{${selector},rpc_grpc_status_code="0"})`,
      (samples) => single(samples) === healthyViews + hungViews,
    );
    const rate = single(
      await prom.waitFor(
        `sum(rate(rpc_server_duration_seconds_count{${selector}}[1m]))`,
        (samples) => single(samples) > 0,
      ),
    );
    console.info(`GetUserOrders: ${single(total)} calls answered OK, rate over 1m ${rate.toFixed(3)}/s`);
    expect(rate).toBeGreaterThan(0);
    // The shipped recording rule agrees that calls were made.
    const recorded = await prom.waitFor(
      `sum(shopmesh:rpc_server_requests:rate1m{${selector}})`,
      (samples) => single(samples) > 0,
    );
    console.info(`shopmesh:rpc_server_requests:rate1m for GetUserOrders: ${single(recorded).toFixed(3)}/s`);
  });

  it("shows the products breaker open, and the alert for it pending", async () => {
    const open = await prom.waitFor(
      'shopmesh_circuit_breaker_state{service="user-orders",dependency="products",state="open"}',
      (samples) => single(samples) === 1,
    );
    expect(single(open)).toBe(1);
    const closed = await prom.query(
      'shopmesh_circuit_breaker_state{service="user-orders",dependency=~"users|orders",state="closed"}',
    );
    expect(closed.map((s) => [s.metric.dependency, s.value]).sort()).toEqual([
      ["orders", 1],
      ["users", 1],
    ]);
    const alert = await prom.waitFor(
      'ALERTS{alertname="ShopmeshCircuitBreakerOpen",dependency="products"}',
      (samples) => samples.length === 1,
    );
    // It fires only after a minute open; the test does not wait that long.
    expect(alert[0]!.metric.alertstate).toBe("pending");
  });

  it("counts each degraded view once, by dependency and fallback", async () => {
    expect(degraded).toBe(hungViews);
    const count = await prom.waitFor(
      'sum(shopmesh_degradations_total{service="user-orders",dependency="products",fallback="NO_PRODUCT_DETAILS"})',
      (samples) => single(samples) === degraded,
    );
    console.info(`shopmesh_degradations_total for products: ${single(count)}`);
  });

  it("times the downstream requests that timed out, hedges included", async () => {
    const timedOut = await prom.waitFor(
      'sum(rpc_client_duration_seconds_count{service="user-orders",dependency="products",rpc_grpc_status_code="4"})',
      (samples) => single(samples) >= breakerFailures,
    );
    const hedges = await prom.waitFor(
      'sum(shopmesh_hedges_total{service="user-orders",dependency="products"})',
      (samples) => single(samples) >= 1,
    );
    // Once open, the breaker sends nothing: at most a request and its hedge per failure that opened it.
    // (Hedges have no such bound: on a busy machine a healthy view's products call may outlast 100 ms too.)
    expect(single(timedOut)).toBeLessThanOrEqual(2 * breakerFailures);
    console.info(
      `products requests that timed out: ${single(timedOut)}, hedges: ${single(hedges)}, breaker failures: ${breakerFailures}`,
    );
  });

  it("reports each outbox's head, and the projection following it", async () => {
    // Two products created, one order placed.
    await prom.waitFor('shopmesh_outbox_head_sequence{service="products"}', (samples) => single(samples) === 2);
    await prom.waitFor('shopmesh_outbox_head_sequence{service="orders"}', (samples) => single(samples) === 1);
    const applied = await prom.waitFor(
      'shopmesh_projection_applied_sequence{service="user-orders",stream=~"products|orders"}',
      (samples) => samples.length === 2 && samples.every((s) => s.value === (s.metric.stream === "products" ? 2 : 1)),
    );
    expect(applied).toHaveLength(2);
    // Relaying to JetStream is off here: no backlog to report.
    expect(await prom.query("shopmesh_outbox_backlog_events")).toEqual([]);
  });

  it("reports the projection's lag per stream and each process's event loop delay", async () => {
    const lag = await prom.waitFor(
      'shopmesh_projection_lag_events{service="user-orders"}',
      (samples) => samples.length === 3,
    );
    expect(lag.map((s) => s.metric.stream).sort()).toEqual(["orders", "products", "users"]);
    const loops = await prom.waitFor("nodejs_eventloop_lag_p99_seconds", (samples) => samples.length === 4);
    expect(loops.every((s) => s.value >= 0)).toBe(true);
  });
});
