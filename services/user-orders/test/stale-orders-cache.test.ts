import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { ListOrdersResponseSchema } from "@shopmesh/sdk/orders/v1";
import { StaleOrdersCache } from "../src/stale-orders-cache.js";

const page = (token: string) => create(ListOrdersResponseSchema, { nextPageToken: token });
const key = (userId: string, pageSize = 20, pageToken = "") => ({ userId, pageSize, pageToken });

describe("StaleOrdersCache", () => {
  it("answers only the exact page asked before", () => {
    const cache = new StaleOrdersCache(10, 60_000);
    cache.keep(key("a"), page("a1"));
    expect(cache.find(key("a"))?.page.nextPageToken).toBe("a1");
    expect(cache.find(key("a", 21))).toBeUndefined();
    expect(cache.find(key("a", 20, "x"))).toBeUndefined();
    expect(cache.find(key("b"))).toBeUndefined();
  });

  it("keeps at most its size, dropping the least recently used", () => {
    const cache = new StaleOrdersCache(2, 60_000);
    cache.keep(key("a"), page("a"));
    cache.keep(key("b"), page("b"));
    cache.find(key("a"));
    cache.keep(key("c"), page("c"));
    expect(cache.size).toBe(2);
    expect(cache.find(key("b"))).toBeUndefined();
    expect(cache.find(key("a"))?.page.nextPageToken).toBe("a");
    expect(cache.find(key("c"))?.page.nextPageToken).toBe("c");
  });

  it("serves no copy older than its maximum age, and forgets it", () => {
    let now = 1_000;
    const cache = new StaleOrdersCache(10, 100, () => now);
    cache.keep(key("a"), page("a"));
    now += 100;
    expect(cache.find(key("a"))?.fetchedAt).toBe(1_000);
    now += 1;
    expect(cache.find(key("a"))).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it("keeps nothing when its size is 0", () => {
    const cache = new StaleOrdersCache(0, 60_000);
    cache.keep(key("a"), page("a"));
    expect(cache.find(key("a"))).toBeUndefined();
  });
});
