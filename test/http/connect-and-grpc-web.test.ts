// The four services over their HTTP listeners, as a browser or curl reaches
// them over HTTPS with the mesh's CA: the Connect protocol (JSON with plain
// fetch, as curl sends it; binary through Connect's client) and gRPC-Web,
// answered by the same handlers and interceptors as the gRPC port (auth,
// validation, faults, deadlines).
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { Dependency, Fallback, UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { failure } from "../support/failure.js";
import { adminToken, signUpCustomer, TestMesh, type ServiceName } from "../support/mesh.js";

let mesh: TestMesh;
let alice: { userId: string; token: string };
let bob: { userId: string; token: string };
let productId: string;

beforeAll(async () => {
  mesh = await TestMesh.start(["users", "products", "orders", "user-orders"], {
    products: { FAULT_INJECTION: "on" },
  });
  const admin = mesh.client("products", await adminToken(mesh));
  productId = (await admin.createProduct({ name: "Tea", price: { currencyCode: "EUR", minorUnits: 450n } })).product!
    .id;
  alice = await signUpCustomer(mesh, "alice");
  bob = await signUpCustomer(mesh, "bob");
  await mesh.client("orders", alice.token).createOrder({ requestId: "http-1", items: [{ productId, quantity: 2 }] });
});
afterAll(() => mesh?.stop());

/** A Connect call with fetch, as curl would make it: JSON in, JSON out. */
async function postJson(
  service: ServiceName,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await mesh.httpFetch(`${mesh.httpUrl(service)}/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

describe("Connect JSON with plain fetch", () => {
  it("reaches each of the four services", async () => {
    const bearer = { authorization: `Bearer ${alice.token}` };
    const products = await postJson("products", "shopmesh.products.v1.ProductsService/ListProducts", { pageSize: 3 });
    expect(products.status).toBe(200);
    expect((products.json.products as { name: string }[]).map((p) => p.name)).toContain("Tea");

    const user = await postJson("users", "shopmesh.users.v1.UsersService/GetUser", { userId: alice.userId }, bearer);
    expect([user.status, (user.json.user as { id: string }).id]).toEqual([200, alice.userId]);

    const orders = await postJson(
      "orders",
      "shopmesh.orders.v1.OrdersService/ListOrders",
      { userId: alice.userId },
      bearer,
    );
    expect(orders.status).toBe(200);
    expect(orders.json.orders).toHaveLength(1);

    const view = await postJson(
      "user-orders",
      "shopmesh.userorders.v1.UserOrdersService/GetUserOrders",
      { userId: alice.userId },
      bearer,
    );
    expect(view.status).toBe(200);
    const lines = (view.json.orders as { lines: { product: { name: string }; quantity: number }[] }[])[0]!.lines;
    expect(lines.map((line) => [line.product.name, line.quantity])).toEqual([["Tea", 2]]);
  });

  it("answers bad input with a Connect error naming the problem, never INTERNAL", async () => {
    const url = `${mesh.httpUrl("products")}/shopmesh.products.v1.ProductsService/ListProducts`;
    const send = async (body: string, contentType?: string) => {
      const response = await mesh.httpFetch(url, {
        method: "POST",
        headers: contentType === undefined ? {} : { "content-type": contentType },
        body,
      });
      return [response.status, await response.json()];
    };
    expect(await send('{"pageSize":3', "application/json")).toEqual([
      400,
      { code: "invalid_argument", message: expect.stringMatching(/ListProductsRequest from JSON: .*position/) },
    ]);
    expect(await send('{"pageSze":3}', "application/json")).toEqual([
      400,
      { code: "invalid_argument", message: expect.stringContaining('key "pageSze" is unknown') },
    ]);
    expect(await send('{"pageSize":3}', "text/plain")).toEqual([
      415,
      {
        code: "invalid_argument",
        message: expect.stringMatching(/^content-type "text\/plain": send application\/json/),
      },
    ]);
    const oversized = JSON.stringify({ productId: "x".repeat(2 * 1024 * 1024) });
    const big = await postJson("products", "shopmesh.products.v1.ProductsService/GetProduct", JSON.parse(oversized));
    expect([big.status, big.json.code, big.json.message]).toEqual([
      429,
      "resource_exhausted",
      expect.stringMatching(/larger than configured readMaxBytes 1048576/),
    ]);
    const unknown = await postJson("products", "shopmesh.products.v1.ProductsService/NoSuchMethod", {});
    expect([unknown.status, unknown.json.code]).toEqual([404, "unimplemented"]);
  });

  it("keeps the call's deadline from connect-timeout-ms (DEADLINE_EXCEEDED)", async () => {
    await mesh.faults("products").setFault({ fault: { method: "ListProducts", latency: durationFromMs(5_000) } });
    try {
      const started = performance.now();
      const answer = await postJson(
        "products",
        "shopmesh.products.v1.ProductsService/ListProducts",
        {},
        { "connect-timeout-ms": "200" },
      );
      expect([answer.status, answer.json.code]).toEqual([504, "deadline_exceeded"]);
      expect(performance.now() - started).toBeLessThan(3_000);
    } finally {
      await mesh.faults("products").clearFaults({});
    }
  });
});

interface Protocol {
  name: string;
  transport: (service: ServiceName, token?: string) => Transport;
  /** The header a client of this protocol sends its timeout in, set by hand so that only the server enforces it. */
  timeoutHeader: (ms: number) => Record<string, string>;
}

const bearer = (token?: string) => (token === undefined ? {} : { authorization: `Bearer ${token}` });
const withToken =
  (token?: string): Interceptor =>
  (next) =>
  (req) => {
    for (const [key, value] of Object.entries(bearer(token))) req.header.set(key, value);
    return next(req);
  };

const protocols: Protocol[] = [
  {
    name: "Connect (binary)",
    transport: (service, token) =>
      createConnectTransport({
        baseUrl: mesh.httpUrl(service),
        fetch: mesh.httpFetch,
        useBinaryFormat: true,
        interceptors: [withToken(token)],
      }),
    timeoutHeader: (ms) => ({ "connect-timeout-ms": String(ms) }),
  },
  {
    name: "Connect (JSON)",
    transport: (service, token) =>
      createConnectTransport({
        baseUrl: mesh.httpUrl(service),
        fetch: mesh.httpFetch,
        interceptors: [withToken(token)],
      }),
    timeoutHeader: (ms) => ({ "connect-timeout-ms": String(ms) }),
  },
  {
    name: "gRPC-Web",
    transport: (service, token) =>
      createGrpcWebTransport({
        baseUrl: mesh.httpUrl(service),
        fetch: mesh.httpFetch,
        interceptors: [withToken(token)],
      }),
    timeoutHeader: (ms) => ({ "grpc-timeout": `${ms}m` }),
  },
];

describe.each(protocols)("over $name", (protocol) => {
  const clients = (token?: string) => ({
    users: createClient(UsersService, protocol.transport("users", token)),
    products: createClient(ProductsService, protocol.transport("products", token)),
    orders: createClient(OrdersService, protocol.transport("orders", token)),
    userOrders: createClient(UserOrdersService, protocol.transport("user-orders", token)) as Client<
      typeof UserOrdersService
    >,
  });

  it("reaches each of the four services", async () => {
    const as = clients(alice.token);
    expect((await as.users.getUser({ userId: alice.userId })).user?.id).toBe(alice.userId);
    expect((await as.products.getProduct({ productId })).product?.name).toBe("Tea");
    expect((await as.orders.listOrders({ userId: alice.userId })).orders).toHaveLength(1);
    const view = await as.userOrders.getUserOrders({ userId: alice.userId });
    expect(view.orders[0]!.lines.map((line) => [line.product?.name, line.quantity])).toEqual([["Tea", 2]]);
    expect(view.degradations).toEqual([]);
  });

  it("answers with the gRPC port's status codes", async () => {
    const anonymous = clients();
    const asAlice = clients(alice.token);
    const asBob = clients(bob.token);
    const missing = await failure(asAlice.products.getProduct({ productId: "01900000-0000-7000-8000-00000000abcd" }));
    expect(missing.code).toBe(Code.NotFound);
    const invalid = await failure(asAlice.products.getProduct({ productId: "nope" }));
    expect([invalid.code, invalid.rawMessage.split(":")[0]]).toEqual([Code.InvalidArgument, "product_id"]);
    expect((await failure(anonymous.users.getUser({ userId: alice.userId }))).code).toBe(Code.Unauthenticated);
    expect((await failure(anonymous.orders.listOrders({ userId: alice.userId }))).code).toBe(Code.Unauthenticated);
    expect((await failure(asBob.users.getUser({ userId: alice.userId }))).code).toBe(Code.PermissionDenied);
    expect((await failure(asBob.orders.listOrders({ userId: alice.userId }))).code).toBe(Code.PermissionDenied);
    expect((await failure(asBob.userOrders.getUserOrders({ userId: alice.userId }))).code).toBe(Code.PermissionDenied);
    // Authorization lets the admin read anyone's view.
    const admin = clients(await adminToken(mesh));
    expect((await admin.userOrders.getUserOrders({ userId: alice.userId })).orders).toHaveLength(1);
  });

  it("ends a call whose deadline passes with DEADLINE_EXCEEDED, enforced by the server", async () => {
    await mesh.faults("products").setFault({ fault: { method: "GetProduct", latency: durationFromMs(5_000) } });
    try {
      const started = performance.now();
      const error = await failure(
        clients().products.getProduct({ productId }, { headers: protocol.timeoutHeader(200) }),
      );
      expect(error.code).toBe(Code.DeadlineExceeded);
      expect(performance.now() - started).toBeLessThan(3_000);
    } finally {
      await mesh.faults("products").clearFaults({});
    }
  });

  it("serves a degraded view when a dependency fails (user-orders)", async () => {
    await mesh.faults("products").setFault({
      fault: { method: "BatchGetProducts", errorRate: 1, errorCode: "FAILED_PRECONDITION" },
    });
    try {
      const view = await clients(alice.token).userOrders.getUserOrders({ userId: alice.userId });
      // The first calls report the injected code; after them the breaker may be open (UNAVAILABLE).
      expect(view.degradations).toMatchObject([
        {
          dependency: Dependency.PRODUCTS,
          code: expect.stringMatching(/^(FAILED_PRECONDITION|UNAVAILABLE)$/),
          fallback: Fallback.NO_PRODUCT_DETAILS,
        },
      ]);
      expect(view.orders[0]!.lines.map((line) => [line.productId, line.quantity, line.product])).toEqual([
        [productId, 2, undefined],
      ]);
    } finally {
      await mesh.faults("products").clearFaults({});
    }
  });
});

describe("a mesh certificate presented over HTTPS", () => {
  /** Opens orders' StreamEvents over Connect and waits for its first message (the heartbeat); the error's code when refused. */
  async function firstEvent(fetch: typeof globalThis.fetch): Promise<Code | "opened"> {
    const orders = createClient(OrdersService, createConnectTransport({ baseUrl: mesh.httpUrl("orders"), fetch }));
    const controller = new AbortController();
    try {
      const iterator = orders
        .streamEvents({ afterSequence: 0n }, { signal: controller.signal, timeoutMs: 10_000 })
        [Symbol.asyncIterator]();
      await iterator.next();
      return "opened";
    } catch (error) {
      return ConnectError.from(error).code;
    } finally {
      controller.abort();
    }
  }

  it("names the calling service, as on the gRPC port: StreamEvents answers only its readers", async () => {
    expect(await firstEvent(mesh.httpFetchAs("user-orders"))).toBe("opened");
    expect(await firstEvent(mesh.httpFetchAs("products"))).toBe(Code.PermissionDenied);
    expect(await firstEvent(mesh.httpFetch)).toBe(Code.Unauthenticated);
  });
});
