import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, type Client } from "@connectrpc/connect";
import type { ProductsService } from "@shopmesh/sdk/products/v1";
import { failure } from "../../../test/support/failure.js";
import { adminToken, signUpCustomer, TestMesh } from "../../../test/support/mesh.js";

let mesh: TestMesh;
let admin: Client<typeof ProductsService>;
beforeAll(async () => {
  mesh = await TestMesh.start(["users", "products"]);
  admin = mesh.client("products", await adminToken(mesh));
});
afterAll(() => mesh?.stop());

const price = (minorUnits: bigint, currencyCode = "EUR") => ({ currencyCode, minorUnits });

describe("CreateProduct", () => {
  it("adds a product for an admin and returns it as stored", async () => {
    const { product } = await admin.createProduct({
      name: " Kettle ",
      description: "Boils water.",
      price: price(2999n),
    });
    expect(product).toMatchObject({
      name: "Kettle",
      description: "Boils water.",
      price: { currencyCode: "EUR", minorUnits: 2999n },
    });
    const { product: read } = await mesh.client("products").getProduct({ productId: product!.id });
    expect(read).toEqual(product);
  });

  it("is refused to a customer (PERMISSION_DENIED) and to an anonymous caller (UNAUTHENTICATED)", async () => {
    const customer = await signUpCustomer(mesh);
    const request = { name: "Nope", price: price(1n) };
    expect((await failure(mesh.client("products", customer.token).createProduct(request))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await failure(mesh.client("products").createProduct(request))).code).toBe(Code.Unauthenticated);
  });

  it.each([
    ["name", { name: "", price: price(1n) }],
    ["name", { name: "x".repeat(201), price: price(1n) }],
    ["description", { name: "ok", description: "x".repeat(2001), price: price(1n) }],
    ["price", { name: "ok" }],
    ["price.currency_code", { name: "ok", price: price(1n, "eur") }],
    // Three upper-case letters, but no currency of ISO 4217.
    ["price.currency_code", { name: "ok", price: price(1n, "ABC") }],
    ["price.minor_units", { name: "ok", price: price(-1n) }],
    ["name", { name: "Ket\u200Btle", price: price(1n) }],
    ["name", { name: "Kettle\u202Eexe.", price: price(1n) }],
    ["description", { name: "ok", description: "Boils\u0000water.", price: price(1n) }],
  ])("names the bad field %s: INVALID_ARGUMENT", async (field, request) => {
    const error = await failure(admin.createProduct(request));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage.startsWith(`${field}:`)).toBe(true);
  });

  it("keeps line breaks in a description, and takes any ISO 4217 currency", async () => {
    const { product } = await admin.createProduct({
      name: "Yen kettle",
      description: "Boils water.\nTwice.",
      price: price(2999n, "JPY"),
    });
    expect(product).toMatchObject({ description: "Boils water.\nTwice.", price: { currencyCode: "JPY" } });
  });
});

describe("GetProduct", () => {
  it("answers NOT_FOUND for an unknown id and INVALID_ARGUMENT for a malformed one", async () => {
    const products = mesh.client("products");
    expect((await failure(products.getProduct({ productId: "01900000-0000-7000-8000-000000000000" }))).code).toBe(
      Code.NotFound,
    );
    const malformed = await failure(products.getProduct({ productId: "x" }));
    expect(malformed.code).toBe(Code.InvalidArgument);
    expect(malformed.rawMessage).toMatch(/^product_id:/);
  });
});

describe("ListProducts", () => {
  it("pages through the whole catalog, oldest first, with opaque tokens", async () => {
    for (let i = 0; i < 5; i++) await admin.createProduct({ name: `Paged ${i}`, price: price(100n + BigInt(i)) });
    const products = mesh.client("products");
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await products.listProducts({ pageSize: 2, pageToken });
      expect(page.products.length).toBeLessThanOrEqual(2);
      seen.push(...page.products.map((p) => p.id));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken !== "");
    const all = await products.listProducts({ pageSize: 100 });
    expect(seen).toEqual(all.products.map((p) => p.id));
    expect(seen).toEqual([...seen].sort());
    expect(pages).toBe(Math.ceil(seen.length / 2));
  });

  it("refuses a bad page_size or page_token: INVALID_ARGUMENT", async () => {
    const products = mesh.client("products");
    for (const [request, field] of [
      [{ pageSize: -1 }, "page_size"],
      [{ pageSize: 101 }, "page_size"],
      [{ pageToken: "definitely not ours" }, "page_token"],
      [{ pageToken: Buffer.from('{"after":1}').toString("base64url") }, "page_token"],
      // The right shape, but a cursor no product id could be.
      [{ pageToken: Buffer.from('{"after":"zzz"}').toString("base64url") }, "page_token"],
      [{ pageToken: Buffer.from('{"after":""}').toString("base64url") }, "page_token"],
    ] as const) {
      const error = await failure(products.listProducts(request));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage.startsWith(`${field}:`)).toBe(true);
    }
    const zero = await products.listProducts({ pageSize: 0 });
    expect(zero.products.length).toBeGreaterThan(0);
    expect((await failure(products.listProducts({ pageSize: -1 }))).rawMessage).toBe(
      "page_size: must be from 1 to 100, or 0 for the default (20)",
    );
  });
});

describe("BatchGetProducts", () => {
  it("returns what exists in request order and lists the missing ids", async () => {
    const { product: a } = await admin.createProduct({ name: "A", price: price(1n) });
    const { product: b } = await admin.createProduct({ name: "B", price: price(2n) });
    const missing = "01900000-0000-7000-8000-0000000000ff";
    const response = await mesh.client("products").batchGetProducts({ productIds: [b!.id, missing, a!.id, b!.id] });
    expect(response.products.map((p) => p.name)).toEqual(["B", "A"]);
    expect(response.missingProductIds).toEqual([missing]);
  });

  it("answers at most 500 ids at once: INVALID_ARGUMENT beyond", async () => {
    const ids = Array.from({ length: 501 }, (_, i) => `01900000-0000-7000-8000-${String(i).padStart(12, "0")}`);
    const error = await failure(mesh.client("products").batchGetProducts({ productIds: ids }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toMatch(/^product_ids: .*500/);
    const ok = await mesh.client("products").batchGetProducts({ productIds: ids.slice(0, 500) });
    expect(ok.missingProductIds).toHaveLength(500);
  });

  it("refuses an oversized request: RESOURCE_EXHAUSTED", async () => {
    const error = await failure(
      mesh.client("products").batchGetProducts({ productIds: ["x".repeat(2 * 1024 * 1024)] }),
    );
    expect(error.code).toBe(Code.ResourceExhausted);
  });
});
