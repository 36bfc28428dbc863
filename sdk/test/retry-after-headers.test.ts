import { Metadata } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { attemptsBehind, backoffMs, retriesAfterHeaders } from "../src/retry-after-headers.js";

const plan = { names: [], maxAttempts: 4, initialBackoffMs: 100, maxBackoffMs: 300 };

describe("retriesAfterHeaders", () => {
  it("covers the named services and methods that the contract marks safe to repeat", () => {
    const products = { ...plan, names: [{ service: "shopmesh.products.v1.ProductsService" }] };
    expect(retriesAfterHeaders(ProductsService.method.getProduct, products)).toBe(true);
    expect(retriesAfterHeaders(ProductsService.method.updateProduct, products)).toBe(true);
    // No idempotency level in the contract: a second create could make a second product.
    expect(retriesAfterHeaders(ProductsService.method.createProduct, products)).toBe(false);
    expect(retriesAfterHeaders(OrdersService.method.listOrders, products)).toBe(false);
    const one = { ...plan, names: [{ service: "shopmesh.products.v1.ProductsService", method: "ListProducts" }] };
    expect(retriesAfterHeaders(ProductsService.method.listProducts, one)).toBe(true);
    expect(retriesAfterHeaders(ProductsService.method.getProduct, one)).toBe(false);
  });
});

describe("attemptsBehind", () => {
  it("counts grpc-js's own attempts from grpc-previous-rpc-attempts", () => {
    expect(attemptsBehind(new Metadata())).toBe(1);
    const retried = new Metadata();
    retried.set("grpc-previous-rpc-attempts", "2");
    expect(attemptsBehind(retried)).toBe(3);
    const garbled = new Metadata();
    garbled.set("grpc-previous-rpc-attempts", "two");
    expect(attemptsBehind(garbled)).toBe(1);
  });
});

describe("backoffMs", () => {
  it("stays under the initial backoff doubled per attempt, up to the longest", () => {
    for (let i = 0; i < 200; i++) {
      expect(backoffMs(plan, 1)).toBeLessThan(100);
      expect(backoffMs(plan, 2)).toBeLessThan(200);
      expect(backoffMs(plan, 4)).toBeLessThan(300);
      expect(backoffMs(plan, 4)).toBeGreaterThanOrEqual(0);
    }
  });
});
