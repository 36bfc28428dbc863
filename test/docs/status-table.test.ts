import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { int64Max, statusName } from "@shopmesh/chassis";
import { GetUserOrdersRequestSchema } from "@shopmesh/sdk/userorders/v1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeProducts } from "../support/fake-products.js";
import { failure } from "../support/failure.js";
import { adminToken, signUpCustomer, TestMesh } from "../support/mesh.js";
import { rawUnaryCall } from "../support/raw-grpc-call.js";

/**
 * The README's table of statuses ("What to expect back"), row by row against
 * a running mesh: each row's situation is made to happen and the status the
 * services answer must be the one the row names. A row without a check, or a
 * check without a row, fails the test, so the table cannot drift from what
 * the services do.
 */

interface Row {
  situation: string;
  status: string;
}

function readStatusTable(): Row[] {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const start = readme.indexOf("What to expect back:");
  if (start < 0) throw new Error('README.md has no "What to expect back:" table');
  const lines = readme.slice(start).split("\n").slice(1);
  const table = lines.slice(lines.findIndex((line) => line.startsWith("|")));
  const rows = table
    .slice(
      0,
      table.findIndex((line) => !line.startsWith("|")),
    )
    .slice(2);
  return rows.map((line) => {
    const [situation, status] = line.split(" | ").map((cell) => cell.replace(/^\| /, "").replace(/ \|$/, ""));
    const code = /^`([A-Z_]+)`/.exec(status ?? "")?.[1];
    if (!situation || !code) throw new Error(`cannot read the status table row: ${line}`);
    return { situation, status: code };
  });
}

/** What a call answered: its status name and message. */
interface Answer {
  code: string;
  message: string;
}

const fromError = (error: ConnectError): Answer => ({ code: statusName(error.code), message: error.rawMessage });
const failed = async (call: Promise<unknown>): Promise<Answer> => fromError(await failure(call));

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const addressPattern = /\d+\.\d+\.\d+\.\d+:\d+|remote_addr|ECONNREFUSED/;

let mesh: TestMesh;
let productId: string;
beforeAll(async () => {
  // A reader of products' events of its own: user-orders' projection already holds one of its streams.
  mesh = await TestMesh.start(
    ["users", "products", "orders", "user-orders"],
    { orders: { FAULT_INJECTION: "on" }, products: { EVENTS_READERS: "user-orders,stream-reader" } },
    { extraIdentities: ["stream-reader"] },
  );
  const admin = mesh.client("products", await adminToken(mesh));
  productId = (await admin.createProduct({ name: "Tea", price: { currencyCode: "EUR", minorUnits: 450n } })).product!
    .id;
});
afterAll(() => mesh?.stop());

let requestCounter = 0;
const requestId = () => `status-table-${++requestCounter}`;

/** Each row's situation, keyed by the row's first cell as the README words it. */
const checks: Record<string, () => Promise<Answer[]>> = {
  "a field is missing or malformed": async () => {
    const c = await signUpCustomer(mesh);
    const missing = await failed(
      mesh.client("orders", c.token).createOrder({
        requestId: requestId(),
        items: [{ productId: "01900000-0000-7000-8000-00000000abcd", quantity: 1 }],
      }),
    );
    expect(missing.message).toMatch(/^items\[0\]\.product_id: /);
    const malformed = await failed(mesh.client("products").getProduct({ productId: "not an id" }));
    expect(malformed.message).toMatch(/^product_id: /);
    return [missing, malformed];
  },

  "an undecodable request body (bad bytes, truncated varint, bad wire type, invalid UTF-8, deep nesting)": async () => {
    const path = "/shopmesh.products.v1.ProductsService/GetProduct";
    const answers: Answer[] = [];
    for (const body of [
      [0xff, 0xff, 0xff],
      [0x0a, 0x05, 0x61],
      [0x0a, 0x02, 0xc3, 0x28],
    ]) {
      const status = await rawUnaryCall(mesh.address("products"), path, Uint8Array.from(body), {
        timeoutMs: 5000,
        ca: mesh.clientTls(undefined)?.ca,
      });
      answers.push({ code: statusName(status.code), message: status.message });
      expect(status.message).toMatch(/^request: cannot decode shopmesh\.products\.v1\.GetProductRequest/);
    }
    return answers;
  },

  "no request message, or more than one, for a method that takes one": async () => {
    const path = "/shopmesh.products.v1.ProductsService/GetProduct";
    const answers: Answer[] = [];
    for (const [messages, sent] of [
      [[], "none"],
      [[Uint8Array.of(0x0a, 0x01, 0x61), Uint8Array.of(0x0a, 0x01, 0x62)], "more than one"],
    ] as const) {
      const status = await rawUnaryCall(mesh.address("products"), path, messages, {
        timeoutMs: 5000,
        ca: mesh.clientTls(undefined)?.ca,
      });
      answers.push({ code: statusName(status.code), message: status.message });
      expect(status.message).toBe(`request: ${path} takes one request message; this call sent ${sent}`);
    }
    return answers;
  },

  "no token, a bad or an expired one": async () => {
    const c = await signUpCustomer(mesh);
    return [
      await failed(mesh.client("users").getUser({ userId: c.userId })),
      await failed(mesh.client("users", `${c.token}x`).getUser({ userId: c.userId })),
    ];
  },

  "a token signed with a key the service has not fetched yet, while users cannot be reached": async () => {
    const c = await signUpCustomer(mesh);
    // A products that has never reached users, so holds none of its keys.
    const products = await mesh.startExtra("products", { USERS_TARGET: `127.0.0.1:${await closedPort()}` });
    try {
      return [await failed(mesh.clientAt("products", products.address, c.token).listProducts({}))];
    } finally {
      await products.stop("SIGKILL");
    }
  },

  "a customer reading another user's data, a customer creating products": async () => {
    const [a, b] = [await signUpCustomer(mesh), await signUpCustomer(mesh)];
    return [
      await failed(mesh.client("users", a.token).getUser({ userId: b.userId })),
      await failed(mesh.client("user-orders", a.token).getUserOrders({ userId: b.userId })),
      await failed(
        mesh
          .client("products", a.token)
          .createProduct({ name: "Pen", price: { currencyCode: "EUR", minorUnits: 100n } }),
      ),
    ];
  },

  "an id that names nothing": async () => [
    await failed(mesh.client("products").getProduct({ productId: "01900000-0000-7000-8000-00000000abcd" })),
  ],

  "signing up twice with one email": async () => {
    const c = await signUpCustomer(mesh);
    return [
      await failed(mesh.client("users").signUp({ email: c.email, password: "another password", displayName: "Twice" })),
    ];
  },

  "the same `request_id` again with different items": async () => {
    const c = await signUpCustomer(mesh);
    const orders = mesh.client("orders", c.token);
    const id = requestId();
    const first = await orders.createOrder({ requestId: id, items: [{ productId, quantity: 2 }] });
    const again = await orders.createOrder({ requestId: id, items: [{ productId, quantity: 2 }] });
    expect(again.order!.id).toBe(first.order!.id);
    const changed = await failed(orders.createOrder({ requestId: id, items: [{ productId, quantity: 7 }] }));
    expect(changed.message).toMatch(/^request_id: /);
    expect((await orders.listOrders({ userId: c.userId })).orders).toHaveLength(1);
    return [changed];
  },

  "a `request_id` with white space at either end": async () => {
    const c = await signUpCustomer(mesh);
    const answer = await failed(
      mesh.client("orders", c.token).createOrder({ requestId: "  padded  ", items: [{ productId, quantity: 1 }] }),
    );
    expect(answer.message).toMatch(/^request_id: /);
    return [answer];
  },

  "an order line or total beyond int64": async () => {
    // Real products cannot price that high; a products server that does, on a real socket.
    const pricey = await startFakeProducts(
      "pricey-products",
      (request) => ({
        products: request.productIds.map((id) => ({
          id,
          name: "Gold",
          price: { currencyCode: "EUR", minorUnits: int64Max },
        })),
      }),
      mesh.certificates?.identities.products,
    );
    const orders = await mesh.startExtra("orders", { PRODUCTS_TARGET: pricey.address });
    try {
      const c = await signUpCustomer(mesh);
      const answer = await failed(
        mesh
          .clientAt("orders", orders.address, c.token)
          .createOrder({ requestId: requestId(), items: [{ productId, quantity: 2 }] }),
      );
      expect(answer.message).toMatch(/^items\[0\]\.quantity: /);
      return [answer];
    } finally {
      await orders.stop("SIGKILL");
      await pricey.stop();
    }
  },

  "orders cannot reach products to price an order": async () => {
    const orders = await mesh.startExtra("orders", {
      PRODUCTS_TARGET: `127.0.0.1:${await closedPort()}`,
      PRODUCTS_TIMEOUT: "500ms",
    });
    try {
      const c = await signUpCustomer(mesh);
      const client = mesh.clientAt("orders", orders.address, c.token);
      const answer = await failed(client.createOrder({ requestId: requestId(), items: [{ productId, quantity: 1 }] }));
      expect(answer.message).toContain("products");
      expect(answer.message).not.toMatch(addressPattern);
      expect((await client.listOrders({ userId: c.userId })).orders).toHaveLength(0);
      return [answer];
    } finally {
      await orders.stop("SIGKILL");
    }
  },

  "the call's own deadline runs out before the view could be built": async () => {
    // orders hangs, so the view's call to it ends when the caller's 300 ms
    // (less user-orders' reserve) are spent, just before the server's own
    // deadline would answer for it.
    const c = await signUpCustomer(mesh);
    const request = toBinary(GetUserOrdersRequestSchema, create(GetUserOrdersRequestSchema, { userId: c.userId }));
    const path = "/shopmesh.userorders.v1.UserOrdersService/GetUserOrders";
    await mesh.faults("orders").setFault({ fault: { method: "ListOrders", hang: true } });
    try {
      const status = await rawUnaryCall(mesh.address("user-orders"), path, request, {
        timeoutMs: 300,
        headers: { authorization: `Bearer ${c.token}` },
        ca: mesh.clientTls(undefined)?.ca,
      });
      return [{ code: statusName(status.code), message: status.message }];
    } finally {
      await mesh.faults("orders").clearFaults({});
    }
  },

  "too many failed sign-ins for one account from one client address": async () => {
    const c = await signUpCustomer(mesh);
    const users = mesh.client("users");
    for (let i = 0; i < 5; i++) await failed(users.signIn({ email: c.email, password: `guess ${i}` }));
    const refused = await failure(users.signIn({ email: c.email, password: "guess 5" }));
    expect(Number(refused.metadata.get("grpc-retry-pushback-ms"))).toBeGreaterThan(0);
    return [fromError(refused)];
  },

  "a request over 1 MiB": async () => [
    await failed(mesh.client("products").getProduct({ productId: "x".repeat(1_100_000) })),
  ],

  "more event streams open than the caller's or the server's cap": async () => {
    // The default cap per caller is 4: a reader's fifth stream is refused.
    const products = mesh.client("products", undefined, "stream-reader");
    const controller = new AbortController();
    try {
      const firstMessage = async () => {
        const stream = products
          .streamEvents({ afterSequence: 0n }, { signal: controller.signal })
          [Symbol.asyncIterator]();
        await stream.next();
      };
      for (let i = 0; i < 4; i++) await firstMessage();
      const refused = await failed(firstMessage());
      expect(refused.message).toBe("too many event streams for this caller (limit 4)");
      return [refused];
    } finally {
      controller.abort();
    }
  },

  "a server is at its limit of calls in progress, with no room to wait": async () => {
    // One call runs and none may wait; GetProduct is slowed so that the first holds its slot.
    const products = await mesh.startExtra("products", {
      MAX_CALLS_IN_FLIGHT: "1",
      MAX_CALLS_QUEUED: "0",
      FAULT_INJECTION: "on",
      FAULTS: JSON.stringify([{ method: "GetProduct", latency: "1500ms" }]),
    });
    try {
      const client = mesh.clientAt("products", products.address);
      const outcomes = await Promise.allSettled([client.getProduct({ productId }), client.getProduct({ productId })]);
      const refused = outcomes
        .filter((outcome) => outcome.status === "rejected")
        .map((outcome) => fromError(ConnectError.from(outcome.reason)));
      expect(refused).toHaveLength(1);
      expect(refused[0]!.message).toMatch(/^server overloaded: /);
      return refused;
    } finally {
      await products.stop("SIGKILL");
    }
  },
};

describe("README's status table", () => {
  const rows = readStatusTable();

  it("has a check for every row and a row for every check", () => {
    expect(rows.map((row) => row.situation).sort()).toEqual(Object.keys(checks).sort());
  });

  for (const row of rows) {
    it(`${row.situation}: ${row.status}`, async () => {
      const check = checks[row.situation];
      if (!check) throw new Error(`no check for the README row "${row.situation}"`);
      const answers = await check();
      expect(answers.length).toBeGreaterThan(0);
      for (const answer of answers) expect([answer.code, answer.message]).toEqual([row.status, answer.message]);
    });
  }
});
