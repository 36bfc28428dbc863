// Crashes during writes, over real processes and real SQLite files: orders
// and then user-orders are SIGKILLed while several clients place orders as
// fast as they can, and restarted on the same database. Nothing acknowledged
// may be lost or doubled: not in orders, not in its event stream, not in
// user-orders' projection; and a request that failed during the crash, retried
// with its request_id, ends as exactly one order.
import { join } from "node:path";
import { Code, ConnectError, createClient, createTransport, type Client, type GrpcTransport } from "@shopmesh/sdk";
import { OrdersService, type Order } from "@shopmesh/sdk/orders/v1";
import type { Product } from "@shopmesh/sdk/products/v1";
import { Consistency, Dependency, type UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminToken, signUpCustomer, TestMesh, type ServiceName } from "../support/mesh.js";
import { projectionPositions, sourceHeads, waitUntil } from "../support/projection-check.js";

const clientsPerBurst = 4;
const ordersPerClient = 40;
/** A CreateOrder waits this long at most; a retry gives up on its request after `retryForMs`. */
const callTimeoutMs = 5_000;
const retryForMs = 30_000;

let mesh: TestMesh;
let catalog: Product[];
const transports: GrpcTransport[] = [];

beforeAll(async () => {
  mesh = await TestMesh.start(["users", "products", "orders", "user-orders"], {
    users: { PASSWORD_HASH_COST: "1024" },
    "user-orders": { EVENTS_RECONNECT_MAX: "300ms" },
  });
  const products = mesh.client("products", await adminToken(mesh));
  catalog = [];
  for (const [name, minorUnits] of [
    ["Tea", 450n],
    ["Mug", 1200n],
    ["Spoon", 199n],
  ] as const) {
    catalog.push(
      (await products.createProduct({ name, description: "", price: { currencyCode: "EUR", minorUnits } })).product!,
    );
  }
}, 60_000);

afterAll(async () => {
  for (const transport of transports.splice(0)) transport.close();
  await mesh?.stop();
});

/**
 * A client of a mesh service that reconnects quickly: grpc-js waits a second
 * and more between reconnection attempts by default, which would make a
 * restart look like a long outage.
 */
function quickClient<S extends typeof OrdersService | typeof UserOrdersService>(
  service: S,
  name: ServiceName,
  token: string,
): Client<S> {
  const transport = createTransport({
    target: mesh.address(name),
    token,
    tls: mesh.clientTls(name),
    channelOptions: {
      "grpc.initial_reconnect_backoff_ms": 50,
      "grpc.max_reconnect_backoff_ms": 250,
      "grpc.use_local_subchannel_pool": 1,
    },
  });
  transports.push(transport);
  return createClient(service, transport);
}

interface Customer {
  userId: string;
  token: string;
}

/** One request of a burst: its id, the order it was acknowledged with, and the codes of the attempts that failed before. */
interface Request {
  customer: Customer;
  requestId: string;
  orderId?: string;
  failedWith: Code[];
}

/**
 * `clientsPerBurst` customers each place `ordersPerClient` orders one after
 * another as fast as they are answered, each with its own request_id. A
 * failed call is retried with the same request_id after 20 ms until it is
 * acknowledged. `acknowledged()` counts the orders answered OK so far.
 */
function burst(
  tag: string,
  customers: Customer[],
): { requests: Request[]; acknowledged: () => number; done: Promise<void> } {
  const requests: Request[] = [];
  let acknowledged = 0;
  const run = async (customer: Customer, index: number) => {
    const orders = quickClient(OrdersService, "orders", customer.token);
    for (let n = 0; n < ordersPerClient; n++) {
      const request: Request = { customer, requestId: `${tag}-${index}-${n}`, failedWith: [] };
      requests.push(request);
      const giveUpAt = performance.now() + retryForMs;
      while (request.orderId === undefined) {
        try {
          const { order } = await orders.createOrder(
            {
              requestId: request.requestId,
              items: [
                { productId: catalog[n % 3]!.id, quantity: 1 + (n % 5) },
                { productId: catalog[(n + 1) % 3]!.id, quantity: 1 },
              ],
            },
            { timeoutMs: callTimeoutMs },
          );
          request.orderId = order!.id;
          acknowledged++;
        } catch (error) {
          request.failedWith.push(ConnectError.from(error).code);
          if (performance.now() > giveUpAt)
            throw new Error(`${request.requestId} still fails after ${retryForMs} ms: ${String(error)}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    }
  };
  const done = Promise.all(customers.map(run)).then(() => undefined);
  return { requests, acknowledged: () => acknowledged, done };
}

/** Every order of a customer, through ListOrders, all pages. */
async function listedOrders(customer: Customer): Promise<Order[]> {
  const orders = mesh.client("orders", customer.token);
  const all: Order[] = [];
  let pageToken = "";
  do {
    const page = await orders.listOrders({ userId: customer.userId, pageSize: 100, pageToken });
    all.push(...page.orders);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return all;
}

/** The order ids of a customer's EVENTUAL view, all pages, in the order served. */
async function eventualOrderIds(customer: Customer): Promise<string[]> {
  const views = mesh.client("user-orders", customer.token);
  const ids: string[] = [];
  let pageToken = "";
  do {
    const page = await views.getUserOrders({
      userId: customer.userId,
      pageSize: 100,
      pageToken,
      consistency: Consistency.EVENTUAL,
    });
    ids.push(...page.orders.map((order) => order.orderId));
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return ids;
}

/** The order id of every OrderPlaced in orders' event stream, from the start up to the head it announces first. */
async function orderPlacedIds(): Promise<string[]> {
  const abort = new AbortController();
  const ids: string[] = [];
  try {
    const stream = mesh
      .client("orders", undefined, "user-orders")
      .streamEvents({ afterSequence: 0n }, { signal: abort.signal, timeoutMs: 20_000 });
    let head: bigint | undefined;
    for await (const message of stream) {
      head ??= message.headSequence;
      if (message.event?.kind.case === "orderPlaced") ids.push(message.event.kind.value.order!.id);
      if ((message.event?.sequence ?? 0n) >= head) break;
      if (head === 0n) break;
    }
  } finally {
    abort.abort();
  }
  return ids;
}

/** Waits until user-orders reports every stream connected and applied up to the sources' own heads. */
async function waitProjectionAtHead(customer: Customer): Promise<void> {
  const heads = await sourceHeads(mesh);
  const wanted = {
    [Dependency.USERS]: heads.users,
    [Dependency.PRODUCTS]: heads.products,
    [Dependency.ORDERS]: heads.orders,
  } as Record<number, number>;
  const views = mesh.client("user-orders", customer.token);
  await waitUntil(
    `user-orders' projection reaches ${JSON.stringify(heads)}`,
    async () => {
      const answer = await views
        .getUserOrders({ userId: customer.userId, pageSize: 1, consistency: Consistency.EVENTUAL })
        .catch(() => undefined);
      return (
        answer !== undefined &&
        answer.streamLags.length === 3 &&
        answer.streamLags.every(
          (lag) =>
            lag.connected &&
            lag.appliedSequence === lag.headSequence &&
            Number(lag.appliedSequence) >= wanted[lag.source]!,
        )
      );
    },
    30_000,
  );
}

/** Counts of each value that occurs more than once. */
function duplicates(values: string[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return Object.fromEntries([...counts].filter(([, count]) => count > 1));
}

/**
 * What must hold after a burst, whatever crashed during it: each request is
 * one order in orders (the acknowledged id), one OrderPlaced in orders'
 * stream, and once in its customer's EVENTUAL view.
 */
async function expectEveryRequestOnceEverywhere(customers: Customer[], requests: Request[]): Promise<void> {
  const acknowledgedIds = requests.map((request) => request.orderId!);
  expect(acknowledgedIds.every((id) => id !== undefined)).toBe(true);
  expect(duplicates(acknowledgedIds)).toEqual({});

  // orders: every acknowledged order, and nothing else, per customer.
  for (const customer of customers) {
    const listed = await listedOrders(customer);
    const mine = requests.filter((request) => request.customer === customer);
    expect(listed.map((order) => order.id).sort()).toEqual(mine.map((request) => request.orderId!).sort());
    expect(duplicates(listed.map((order) => order.requestId))).toEqual({});
    for (const order of listed)
      expect(order.requestId).toBe(mine.find((request) => request.orderId === order.id)!.requestId);
  }
  // GetOrder agrees for a few of them, those retried after a failure first.
  const orders = mesh.client("orders", customers[0]!.token);
  const sample = requests
    .filter((request) => request.customer === customers[0])
    .sort((a, b) => b.failedWith.length - a.failedWith.length)
    .slice(0, 5);
  for (const request of sample)
    expect((await orders.getOrder({ orderId: request.orderId! })).order?.requestId).toBe(request.requestId);

  // orders' event stream: one OrderPlaced per acknowledged order.
  const placed = await orderPlacedIds();
  expect(duplicates(placed)).toEqual({});
  const placedSet = new Set(placed);
  expect(acknowledgedIds.filter((id) => !placedSet.has(id))).toEqual([]);

  // user-orders' projection: caught up, and each order once in its customer's EVENTUAL view.
  await waitProjectionAtHead(customers[0]!);
  expect(projectionPositions(join(mesh.dataDir, "user-orders.sqlite"))).toEqual(await sourceHeads(mesh));
  for (const customer of customers) {
    const viewed = await eventualOrderIds(customer);
    expect(duplicates(viewed)).toEqual({});
    const mine = requests.filter((request) => request.customer === customer).map((request) => request.orderId!);
    expect([...viewed].sort()).toEqual([...mine].sort());
  }
}

describe("a SIGKILL during a burst of CreateOrder", () => {
  it("of orders loses no acknowledged order, doubles none, and a retried request becomes one order", async () => {
    const customers = await Promise.all(
      Array.from({ length: clientsPerBurst }, (_, i) => signUpCustomer(mesh, `orders-crash-${i}`)),
    );
    const writes = burst("orders-crash", customers);
    await waitUntil("the burst is under way", () => writes.acknowledged() >= 30, 30_000);
    const restart = await mesh.stopService("orders", "SIGKILL");
    const atKill = writes.acknowledged();
    await restart();
    await writes.done;

    const total = clientsPerBurst * ordersPerClient;
    expect(writes.requests).toHaveLength(total);
    expect(atKill).toBeLessThan(total);
    // The kill was felt: some calls failed and were retried.
    const retried = writes.requests.filter((request) => request.failedWith.length > 0);
    expect(retried.length).toBeGreaterThan(0);
    // The one failure a crash explains: the connection broke or could not be made.
    expect([...new Set(retried.flatMap((request) => request.failedWith))]).toEqual([Code.Unavailable]);
    await expectEveryRequestOnceEverywhere(customers, writes.requests);
  }, 120_000);

  it("of user-orders: the projection resumes, reaches every source's head, and holds each acknowledged order once", async () => {
    const customers = await Promise.all(
      Array.from({ length: clientsPerBurst }, (_, i) => signUpCustomer(mesh, `projection-crash-${i}`)),
    );
    const writes = burst("projection-crash", customers);
    await waitUntil("the burst is under way", () => writes.acknowledged() >= 30, 30_000);
    const restart = await mesh.stopService("user-orders", "SIGKILL");
    const atKill = writes.acknowledged();
    await waitUntil("orders are written while user-orders is down", () => writes.acknowledged() >= atKill + 20, 30_000);
    await restart();
    await writes.done;

    // user-orders takes no part in writing orders.
    expect(writes.requests.filter((request) => request.failedWith.length > 0)).toEqual([]);
    await expectEveryRequestOnceEverywhere(customers, writes.requests);
  }, 120_000);
});
