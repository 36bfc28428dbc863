import { Metadata } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { attemptsBehind, backoffMs, retryAfterHeadersFor } from "../src/retry-after-headers.js";

const plan = { maxAttempts: 4, initialBackoffMs: 100, maxBackoffMs: 300 };

describe("retryAfterHeadersFor", () => {
  it("covers the named services and methods that the contract marks safe to repeat", () => {
    const products = [{ service: "shopmesh.products.v1.ProductsService" }];
    expect(retryAfterHeadersFor(ProductsService.method.getProduct, products, plan)).toBe(plan);
    expect(retryAfterHeadersFor(ProductsService.method.updateProduct, products, plan)).toBe(plan);
    // No idempotency level in the contract: a second create could make a second product.
    expect(retryAfterHeadersFor(ProductsService.method.createProduct, products, plan)).toBeUndefined();
    expect(retryAfterHeadersFor(OrdersService.method.listOrders, products, plan)).toBeUndefined();
    const one = [{ service: "shopmesh.products.v1.ProductsService", method: "ListProducts" }];
    expect(retryAfterHeadersFor(ProductsService.method.listProducts, one, plan)).toBe(plan);
    expect(retryAfterHeadersFor(ProductsService.method.getProduct, one, plan)).toBeUndefined();
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
