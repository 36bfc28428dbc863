import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@shopmesh/sdk/health/v1";
import { TestMesh } from "../../../test/support/mesh.js";
import { freePort } from "../../../test/support/free-port.js";

let mesh: TestMesh;
let transport: GrpcTransport;
let productsPort: number;

beforeAll(async () => {
  mesh = await TestMesh.start(["users", "orders"]);
  productsPort = await freePort();
  const userOrders = await mesh.startExtra("user-orders", { PRODUCTS_TARGET: `127.0.0.1:${productsPort}` });
  transport = createTransport({ target: userOrders.address, tls: mesh.clientTls("user-orders") });
});

afterAll(async () => {
  transport?.close();
  await mesh?.stop();
});

describe("user-orders readiness", () => {
  it("reports the projection NOT_SERVING until it has caught up with every stream", { timeout: 60_000 }, async () => {
    const health = createClient(Health, transport);
    expect((await health.check({ service: "" })).status).toBe(ServingStatus.SERVING);
    // users and orders are followed; products cannot be reached yet.
    expect((await health.check({ service: "projection" })).status).toBe(ServingStatus.NOT_SERVING);

    await mesh.startExtra("products", { PORT: String(productsPort) });
    await vi.waitFor(
      async () => expect((await health.check({ service: "projection" })).status).toBe(ServingStatus.SERVING),
      { timeout: 30_000, interval: 200 },
    );
  });
});
