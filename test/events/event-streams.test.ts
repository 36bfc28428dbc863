// The producer side of the event streams, end to end: users, products and
// orders as real processes, their StreamEvents read over real gRPC. Every
// write yields exactly one event, numbered in commit order from 1; a write
// that changes nothing yields none; streams replay, follow live and send
// heartbeats; the log survives a crash; and a database from before the
// outbox gets its history on start.
//
// The tests build on each other's writes, in order, like a shop's life.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { toBinary } from "@bufbuild/protobuf";
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, type Client } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { OrdersService, type Order } from "@shopmesh/sdk/orders/v1";
import { ProductsService, type Product } from "@shopmesh/sdk/products/v1";
import { Role, UserEventSchema, UsersService, type User } from "@shopmesh/sdk/users/v1";
import { failure } from "../support/failure.js";
import { adminEmail, adminToken, TestMesh, type ServiceName } from "../support/mesh.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
type EventService = Extract<ServiceName, "users" | "products" | "orders">;
const eventServices: EventService[] = ["users", "products", "orders"];

/** What every StreamEvents response has. */
interface StreamMessage<E> {
  event?: E;
  headSequence: bigint;
}
interface Envelope {
  sequence: bigint;
  occurTime?: Timestamp;
  kind: { case: string | undefined; value?: unknown };
}
/** The StreamEvents method of any of the three clients. */
interface EventsClient<E> {
  streamEvents(
    request: { afterSequence?: bigint },
    options?: { signal?: AbortSignal },
  ): AsyncIterable<StreamMessage<E>>;
}

let mesh: TestMesh;
let admin: string;
const streamEnv = { EVENTS_HEARTBEAT: "200ms" };
const heartbeatMs = 200;
// Cheap password hashing: the tests sign up a crowd.
const usersEnv = { ...streamEnv, PASSWORD_HASH_COST: "1024" };

beforeAll(async () => {
  mesh = await TestMesh.start(["users", "products", "orders"], {
    users: usersEnv,
    products: streamEnv,
    orders: streamEnv,
  });
  admin = await adminToken(mesh);
});
afterAll(() => mesh?.stop());

// Clients follow the services across restarts (a restarted service gets a
// new port, and the environment above again).
const servicesOf = { users: UsersService, products: ProductsService, orders: OrdersService };
const clients = new Map<string, unknown>();
function client<S extends EventService>(service: S, token?: string, as?: string): Client<(typeof servicesOf)[S]> {
  const key = `${service} ${mesh.address(service)} ${token ?? ""} ${as ?? ""}`;
  let found = clients.get(key);
  if (!found) {
    found = mesh.client(service, token, as);
    clients.set(key, found);
  }
  return found as Client<(typeof servicesOf)[S]>;
}
/** Clients: users anonymous (SignUp needs no token), products as the admin; `null` for no token. */
const users = (token: string | null = null) => client("users", token ?? undefined);
const products = (token: string | null = admin) => client("products", token ?? undefined);
const orders = (token: string) => client("orders", token);
/** The event streams as user-orders reads them: with its certificate (mutual TLS). */
const userEvents = () => client("users", undefined, "user-orders");
const productEvents = () => client("products", undefined, "user-orders");
const orderEvents = () => client("orders", undefined, "user-orders");

/** A stream being read; `next()` fails the test instead of hanging. */
class Follower<E> {
  readonly #controller = new AbortController();
  readonly #iterator: AsyncIterator<StreamMessage<E>>;

  constructor(events: EventsClient<E>, afterSequence: bigint) {
    this.#iterator = events
      .streamEvents({ afterSequence }, { signal: this.#controller.signal })
      [Symbol.asyncIterator]();
    followers.add(this);
  }

  async next(withinMs = 5_000): Promise<StreamMessage<E>> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no message within ${withinMs} ms`)), withinMs);
    });
    try {
      const result = await Promise.race([this.#iterator.next(), timeout]);
      if (result.done) throw new Error("the stream ended");
      return result.value;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The next event, skipping heartbeats. */
  async nextEvent(withinMs = 5_000): Promise<E> {
    const deadline = Date.now() + withinMs;
    for (;;) {
      const message = await this.next(Math.max(1, deadline - Date.now()));
      if (message.event) return message.event;
    }
  }

  close(): void {
    this.#controller.abort();
    followers.delete(this);
  }
}
const followers = new Set<Follower<unknown>>();
afterEach(() => {
  for (const follower of followers) follower.close();
});

/** The whole log after `afterSequence`, up to the head the stream announced first. */
async function readLog<E extends Envelope>(
  events: EventsClient<E>,
  afterSequence = 0n,
): Promise<{ head: bigint; events: E[] }> {
  const follower = new Follower(events, afterSequence);
  try {
    const first = await follower.next();
    expect(first.event).toBeUndefined();
    const read: E[] = [];
    // Heartbeats keep coming, so a missing event shows as a deadline passing.
    const deadline = Date.now() + 10_000;
    while (first.headSequence > (read.at(-1)?.sequence ?? afterSequence)) {
      if (Date.now() > deadline)
        throw new Error(`read ${read.length} events, never reached head ${first.headSequence}`);
      const message = await follower.next();
      expect(message.headSequence).toBeGreaterThanOrEqual(message.event?.sequence ?? 0n);
      if (message.event) read.push(message.event);
    }
    return { head: first.headSequence, events: read };
  } finally {
    follower.close();
  }
}

async function headOf<E>(events: EventsClient<E>): Promise<bigint> {
  const follower = new Follower(events, 0n);
  try {
    return (await follower.next()).headSequence;
  } finally {
    follower.close();
  }
}

/** The first message of a stream, or the error that ended it. */
async function firstMessage<E>(events: EventsClient<E>, afterSequence = 0n): Promise<StreamMessage<E>> {
  const follower = new Follower(events, afterSequence);
  try {
    return await follower.next();
  } finally {
    follower.close();
  }
}

/** A heartbeat: no event, only the head. */
const heartbeat = (headSequence: bigint) => ({ $typeName: expect.any(String), headSequence });
const sequences = (events: Envelope[]) => events.map((event) => event.sequence);
const oneTo = (n: number) => Array.from({ length: n }, (_, i) => BigInt(i + 1));
const kinds = (events: Envelope[]) => events.map((event) => event.kind.case);
const occurMs = (event: Envelope) => timestampMs(event.occurTime!);
function payload<T>(event: Envelope, field: "user" | "product" | "order"): T {
  return (event.kind.value as Record<string, T>)[field]!;
}
const price = (minorUnits: bigint, currencyCode = "EUR") => ({ currencyCode, minorUnits });

/** The whole catalog, oldest first (ListProducts orders by id). */
async function allProducts(): Promise<Product[]> {
  const all: Product[] = [];
  let pageToken = "";
  do {
    const page = await products().listProducts({ pageSize: 100, pageToken });
    all.push(...page.products);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return all;
}

let accountCounter = 0;
async function signUp(name: string): Promise<{ user: User; token: string }> {
  const { user, session } = await users().signUp({
    email: `${name}-${process.pid}-${++accountCounter}@shopmesh.test`,
    password: "correct horse",
    displayName: name,
  });
  return { user: user!, token: session!.accessToken };
}

// What the first test writes, for the tests after it.
let alice: { user: User; token: string };
let bob: { user: User; token: string };
let tea: Product;
let mug: Product;
let placed: Order[];

describe("events of writes", () => {
  it("records every kind of write as one event, numbered 1..N in commit order, with its payload and commit time", async () => {
    const started = Date.now();
    alice = await signUp("alice");
    bob = await signUp("bob");
    tea = (await products().createProduct({ name: "Tea", description: "Loose leaf.", price: price(450n) })).product!;
    mug = (await products().createProduct({ name: "Mug", price: price(1200n) })).product!;
    const repriced = (await products().updateProduct({ productId: tea.id, price: price(500n) })).product!;
    expect(repriced).toMatchObject({
      id: tea.id,
      name: "Tea",
      description: "Loose leaf.",
      price: { minorUnits: 500n },
    });
    placed = [
      (
        await orders(alice.token).createOrder({
          requestId: "alice-1",
          items: [
            { productId: tea.id, quantity: 2 },
            { productId: mug.id, quantity: 1 },
          ],
        })
      ).order!,
      (await orders(bob.token).createOrder({ requestId: "bob-1", items: [{ productId: mug.id, quantity: 3 }] })).order!,
    ];
    const ended = Date.now();

    // users: the admin (signed up in beforeAll), then alice, then bob.
    const userLog = await readLog(userEvents());
    expect(userLog.head).toBe(3n);
    expect(sequences(userLog.events)).toEqual(oneTo(3));
    expect(kinds(userLog.events)).toEqual(["userRegistered", "userRegistered", "userRegistered"]);
    const registered = userLog.events.map((event) => payload<User>(event, "user"));
    expect(registered[0]).toMatchObject({ email: adminEmail, role: Role.ADMIN });
    expect(registered.slice(1)).toEqual([alice.user, bob.user]);
    for (const event of userLog.events) {
      // The account as GetUser shows it, nothing more: no password hash, not even as an unknown field.
      expect(Buffer.from(toBinary(UserEventSchema, event)).includes("scrypt")).toBe(false);
      expect(occurMs(event)).toBe(timestampMs(payload<User>(event, "user").createTime!));
    }

    // products: created, created, then changed with the new price.
    const productLog = await readLog(productEvents());
    expect(sequences(productLog.events)).toEqual(oneTo(3));
    expect(kinds(productLog.events)).toEqual(["productCreated", "productCreated", "productChanged"]);
    expect(productLog.events.map((event) => payload<Product>(event, "product"))).toEqual([tea, mug, repriced]);
    expect(occurMs(productLog.events[0]!)).toBe(timestampMs(tea.createTime!));
    expect(occurMs(productLog.events[2]!)).toBeGreaterThanOrEqual(occurMs(productLog.events[1]!));
    expect(occurMs(productLog.events[2]!)).toBeLessThanOrEqual(ended);

    // orders: each placed order with its lines, priced at the time (tea at its new price).
    const orderLog = await readLog(orderEvents());
    expect(sequences(orderLog.events)).toEqual(oneTo(2));
    expect(kinds(orderLog.events)).toEqual(["orderPlaced", "orderPlaced"]);
    const orderPayloads = orderLog.events.map((event) => payload<Order>(event, "order"));
    expect(orderPayloads).toEqual(placed);
    expect(orderPayloads[0]!.userId).toBe(alice.user.id);
    expect(orderPayloads[0]!.lines.map((line) => [line.productId, line.quantity, line.unitPrice?.minorUnits])).toEqual([
      [tea.id, 2, 500n],
      [mug.id, 1, 1200n],
    ]);
    expect(orderPayloads[0]!.total).toMatchObject({ currencyCode: "EUR", minorUnits: 2200n });

    // Each commit time falls within the writes (the admin signed up before them).
    for (const event of [...userLog.events.slice(1), ...productLog.events, ...orderLog.events]) {
      expect(occurMs(event)).toBeGreaterThanOrEqual(started);
      expect(occurMs(event)).toBeLessThanOrEqual(ended);
    }
  });

  it("replays exactly the events after a given after_sequence", async () => {
    const productLog = await readLog(productEvents());
    for (const after of [1n, 2n, 3n]) {
      const rest = await readLog(productEvents(), after);
      expect(rest.head).toBe(3n);
      expect(rest.events).toEqual(productLog.events.slice(Number(after)));
    }
    const userLog = await readLog(userEvents());
    expect((await readLog(userEvents(), 2n)).events).toEqual(userLog.events.slice(2));
    const orderLog = await readLog(orderEvents());
    expect((await readLog(orderEvents(), 1n)).events).toEqual(orderLog.events.slice(1));
  });

  it("delivers a new write to a stream left open, as it commits", async () => {
    const productFollower = new Follower(productEvents(), 3n);
    const userFollower = new Follower(userEvents(), 3n);
    const orderFollower = new Follower(orderEvents(), 2n);
    expect((await productFollower.next()).headSequence).toBe(3n);
    expect((await userFollower.next()).headSequence).toBe(3n);
    expect((await orderFollower.next()).headSequence).toBe(2n);

    const { product: spoon } = await products().createProduct({ name: "Spoon", price: price(199n) });
    const productEvent = await productFollower.nextEvent();
    expect([productEvent.sequence, productEvent.kind.case]).toEqual([4n, "productCreated"]);
    expect(payload(productEvent, "product")).toEqual(spoon);

    const carol = await signUp("carol");
    const userEvent = await userFollower.nextEvent();
    expect([userEvent.sequence, payload(userEvent, "user")]).toEqual([4n, carol.user]);

    const { order } = await orders(carol.token).createOrder({
      requestId: "carol-1",
      items: [{ productId: spoon!.id, quantity: 1 }],
    });
    const orderEvent = await orderFollower.nextEvent();
    expect([orderEvent.sequence, payload(orderEvent, "order")]).toEqual([3n, order]);
  });

  it("numbers concurrent writes without gaps, in the order they committed", async () => {
    const before = { users: await headOf(userEvents()), products: await headOf(productEvents()) };
    const [accounts, created] = await Promise.all([
      Promise.all(Array.from({ length: 12 }, (_, i) => signUp(`crowd${i}`))),
      Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          products().createProduct({ name: `Crowd ${i}`, price: price(100n + BigInt(i)) }),
        ),
      ),
    ]);
    const userLog = await readLog(userEvents(), before.users);
    const productLog = await readLog(productEvents(), before.products);
    expect(sequences(userLog.events)).toEqual(oneTo(12).map((n) => before.users + n));
    expect(sequences(productLog.events)).toEqual(oneTo(30).map((n) => before.products + n));
    // Each write exactly once...
    const userIds = userLog.events.map((event) => payload<User>(event, "user").id);
    const productIds = productLog.events.map((event) => payload<Product>(event, "product").id);
    expect(new Set(userIds)).toEqual(new Set(accounts.map((account) => account.user.id)));
    expect(new Set(productIds)).toEqual(new Set(created.map((response) => response.product!.id)));
    // ...and in commit order: ids are UUIDv7s made as each row is written,
    // so they ascend in the order the transactions ran.
    expect(userIds).toEqual([...userIds].sort());
    expect(productIds).toEqual([...productIds].sort());
  });

  it("sends a heartbeat with the head first, and again while nothing happens", async () => {
    const head = await headOf(productEvents());
    // Timed from before the call: the server's pacing starts once it has sent the first heartbeat,
    // which may take a while to arrive here.
    const started = performance.now();
    const follower = new Follower(productEvents(), head);
    expect(await follower.next()).toEqual(heartbeat(head));
    const firstAt = performance.now();
    const idle = [await follower.next(), await follower.next()];
    const thirdAt = performance.now();
    for (const message of idle) expect(message).toEqual(heartbeat(head));
    // Paced by EVENTS_HEARTBEAT (200 ms), not sent in a loop, and not the 2 s default. The two after
    // the first are apart from it too, unless the first was held up for most of their 400 ms.
    expect(thirdAt - started).toBeGreaterThanOrEqual(2 * heartbeatMs - 5);
    expect(thirdAt - firstAt).toBeGreaterThanOrEqual(heartbeatMs / 2);
    expect(thirdAt - started).toBeLessThan(2 * 2_000);
  });
});

describe("StreamEvents access", () => {
  it.each(eventServices)(
    "%s: only user-orders' certificate reads it: no certificate UNAUTHENTICATED (whatever the token), another service's certificate PERMISSION_DENIED",
    async (service) => {
      const events = (token?: string, as?: string) => client(service, token, as) as unknown as EventsClient<Envelope>;
      const anonymous = await failure(firstMessage(events()));
      expect(anonymous.code).toBe(Code.Unauthenticated);
      expect(anonymous.rawMessage).toContain("only user-orders may call this");
      expect((await failure(firstMessage(events(alice.token)))).code).toBe(Code.Unauthenticated);
      expect((await failure(firstMessage(events(admin)))).code).toBe(Code.Unauthenticated);
      // Signed by the mesh's CA, but naming another service: the wrong identity.
      const impostor = await failure(firstMessage(events(undefined, "orders")));
      expect(impostor.code).toBe(Code.PermissionDenied);
      expect(impostor.rawMessage).toContain("the caller's certificate names orders");
      expect((await failure(firstMessage(events(admin, "products")))).code).toBe(Code.PermissionDenied);
      const head = (await firstMessage(events(undefined, "user-orders"))).headSequence;
      expect(head).toBeGreaterThan(0n);
      expect(await firstMessage(events(alice.token, "user-orders"))).toEqual(heartbeat(head));
    },
  );

  it.each(eventServices)("%s: after_sequence beyond the head is OUT_OF_RANGE", async (service) => {
    const events = client(service, undefined, "user-orders") as unknown as EventsClient<Envelope>;
    const head = await headOf(events);
    expect((await firstMessage(events, head)).headSequence).toBe(head);
    const beyond = await failure(firstMessage(events, head + 1n));
    expect(beyond.code).toBe(Code.OutOfRange);
    expect(beyond.rawMessage).toContain(String(head));
    expect((await failure(firstMessage(events, 2n ** 64n - 1n))).code).toBe(Code.OutOfRange);
  });
});

describe("writes that record no event", () => {
  it("duplicate sign-up, repeated request_id, an UpdateProduct that changes nothing, and refused writes", async () => {
    const before = {
      users: await headOf(userEvents()),
      products: await headOf(productEvents()),
      orders: await headOf(orderEvents()),
    };

    // Signing up again with a taken email.
    const again = await failure(
      users().signUp({ email: alice.user.email, password: "another password", displayName: "Alice again" }),
    );
    expect(again.code).toBe(Code.AlreadyExists);

    // One order, asked for four times: one event.
    const request = { requestId: "alice-2", items: [{ productId: mug.id, quantity: 1 }] };
    const { order } = await orders(alice.token).createOrder(request);
    const repeats = await Promise.all([1, 2, 3].map(() => orders(alice.token).createOrder(request)));
    for (const repeat of repeats) expect(repeat.order).toEqual(order);

    // Updates that change nothing.
    const current = (await products().getProduct({ productId: tea.id })).product!;
    for (const update of [
      { productId: tea.id },
      { productId: tea.id, name: "Tea" },
      { productId: tea.id, name: "  Tea  " },
      { productId: tea.id, description: current.description, price: current.price },
    ]) {
      expect((await products().updateProduct(update)).product).toEqual(current);
    }

    // Updates refused.
    for (const [field, update] of [
      ["product_id", { productId: "not-an-id", name: "X" }],
      ["name", { productId: tea.id, name: "" }],
      ["name", { productId: tea.id, name: "x".repeat(201) }],
      ["description", { productId: tea.id, description: "x".repeat(2001) }],
      ["price.currency_code", { productId: tea.id, price: price(1n, "eur") }],
      ["price.minor_units", { productId: tea.id, price: price(-1n) }],
    ] as const) {
      const error = await failure(products().updateProduct(update));
      expect(error.code, field).toBe(Code.InvalidArgument);
      expect(error.rawMessage.startsWith(`${field}:`), error.rawMessage).toBe(true);
    }
    const missing = await failure(
      products().updateProduct({ productId: "01900000-0000-7000-8000-00000000abcd", name: "X" }),
    );
    expect(missing.code).toBe(Code.NotFound);
    const byCustomer = await failure(
      products(alice.token).updateProduct({ productId: tea.id, name: "Cheap tea", price: price(1n) }),
    );
    expect(byCustomer.code).toBe(Code.PermissionDenied);
    const anonymous = await failure(products(null).updateProduct({ productId: tea.id, name: "Cheap tea" }));
    expect(anonymous.code).toBe(Code.Unauthenticated);
    expect((await products().getProduct({ productId: tea.id })).product).toEqual(current);

    // An order for a product that does not exist.
    const unknown = await failure(
      orders(bob.token).createOrder({
        requestId: "bob-unknown",
        items: [{ productId: "01900000-0000-7000-8000-00000000abcd", quantity: 1 }],
      }),
    );
    expect(unknown.code).toBe(Code.InvalidArgument);

    // user-orders' certificate reads the streams and nothing else: it acts for no person.
    const asService = await failure(
      client("orders", undefined, "user-orders").createOrder({
        requestId: "service-1",
        items: [{ productId: mug.id, quantity: 1 }],
      }),
    );
    expect(asService.code).toBe(Code.Unauthenticated);
    expect(
      (
        await failure(
          client("products", undefined, "user-orders").updateProduct({ productId: tea.id, name: "Service tea" }),
        )
      ).code,
    ).toBe(Code.Unauthenticated);
    expect(
      (
        await failure(
          client("products", undefined, "user-orders").createProduct({ name: "Service tea", price: price(1n) }),
        )
      ).code,
    ).toBe(Code.Unauthenticated);

    expect(await headOf(userEvents())).toBe(before.users);
    expect(await headOf(productEvents())).toBe(before.products);
    const orderLog = await readLog(orderEvents(), before.orders);
    expect(orderLog.events.map((event) => payload(event, "order"))).toEqual([order]);

    // A change to one field is an event that carries the whole product.
    const { product: renamed } = await products().updateProduct({ productId: tea.id, name: "Green tea" });
    expect(renamed).toEqual({ ...current, name: "Green tea" });
    const productLog = await readLog(productEvents(), before.products);
    expect(productLog.events.map((event) => [event.sequence, event.kind.case, payload(event, "product")])).toEqual([
      [before.products + 1n, "productChanged", renamed],
    ]);
  });
});

describe("durability", () => {
  it("keeps every event across SIGKILL and restart, and numbers new ones after the old head", async () => {
    const logs = {
      users: await readLog(userEvents()),
      products: await readLog(productEvents()),
      orders: await readLog(orderEvents()),
    };
    // Last writes acknowledged just before the crash.
    const dave = await signUp("dave");
    const { product: kettle } = await products().createProduct({ name: "Kettle", price: price(2999n) });
    const { order } = await orders(dave.token).createOrder({
      requestId: "dave-1",
      items: [{ productId: kettle!.id, quantity: 1 }],
    });
    await Promise.all(eventServices.map((service) => mesh.processes.get(service)!.stop("SIGKILL")));
    // users first: products and orders fetch the token signing keys from it, at its new address.
    await mesh.startService("users");
    await mesh.startService("products");
    await mesh.startService("orders");

    const userLog = await readLog(userEvents());
    expect(userLog.events.slice(0, -1)).toEqual(logs.users.events);
    expect(userLog.events.at(-1)).toMatchObject({
      sequence: logs.users.head + 1n,
      kind: { value: { user: dave.user } },
    });
    const productLog = await readLog(productEvents());
    expect(productLog.events.slice(0, -1)).toEqual(logs.products.events);
    expect(productLog.events.at(-1)).toMatchObject({
      sequence: logs.products.head + 1n,
      kind: { value: { product: kettle } },
    });
    const orderLog = await readLog(orderEvents());
    expect(orderLog.events.slice(0, -1)).toEqual(logs.orders.events);
    expect(orderLog.events.at(-1)).toMatchObject({ sequence: logs.orders.head + 1n, kind: { value: { order } } });

    // New writes after the restart continue the numbering.
    const erin = await signUp("erin");
    const { product: teapot } = await products().createProduct({ name: "Teapot", price: price(3500n) });
    const { order: next } = await orders(erin.token).createOrder({
      requestId: "erin-1",
      items: [{ productId: teapot!.id, quantity: 1 }],
    });
    expect((await readLog(userEvents(), userLog.head)).events.map((e) => [e.sequence, payload(e, "user")])).toEqual([
      [userLog.head + 1n, erin.user],
    ]);
    expect(
      (await readLog(productEvents(), productLog.head)).events.map((e) => [e.sequence, payload(e, "product")]),
    ).toEqual([[productLog.head + 1n, teapot]]);
    expect((await readLog(orderEvents(), orderLog.head)).events.map((e) => [e.sequence, payload(e, "order")])).toEqual([
      [orderLog.head + 1n, next],
    ]);
  });
});

describe("products crashing", () => {
  it("leaves an event for every product a cut-short burst wrote, and none for a CreateOrder while it is down", async () => {
    const before = await readLog(productEvents());
    const ordersBefore = await headOf(orderEvents());
    const acknowledged: Product[] = [];
    let killed: Promise<unknown> | undefined;
    // Four writers, each writing until its call fails; products is killed
    // once twenty writes are acknowledged, so up to four are cut in flight.
    const writer = async (w: number) => {
      for (let i = 0; ; i++) {
        try {
          const { product } = await products().createProduct({ name: `Burst ${w}.${i}`, price: price(BigInt(i)) });
          acknowledged.push(product!);
        } catch {
          return;
        }
        if (acknowledged.length === 20) killed = mesh.processes.get("products")!.stop("SIGKILL");
      }
    };
    await Promise.all([0, 1, 2, 3].map(writer));
    await killed;
    expect(acknowledged.length).toBeGreaterThanOrEqual(20);

    // With products down, orders cannot price an order: it fails and records nothing.
    const down = await failure(
      orders(bob.token).createOrder({ requestId: "bob-down", items: [{ productId: mug.id, quantity: 1 }] }),
    );
    expect(down.code).toBe(Code.Unavailable);
    expect(await headOf(orderEvents())).toBe(ordersBefore);

    await mesh.startService("products");

    const after = await readLog(productEvents());
    expect(sequences(after.events)).toEqual(oneTo(Number(after.head)));
    expect(after.events.slice(0, before.events.length)).toEqual(before.events);
    const catalog = (await allProducts()).map((product) => product.id);
    const createdIds = after.events
      .filter((e) => e.kind.case === "productCreated")
      .map((e) => payload<Product>(e, "product").id);
    expect(createdIds.sort()).toEqual(catalog.sort());
    const burstEvents = after.events.slice(before.events.length).map((e) => payload<Product>(e, "product"));
    expect(burstEvents.length).toBeGreaterThanOrEqual(acknowledged.length);
    expect(burstEvents).toEqual(expect.arrayContaining(acknowledged));
    // orders still points at the products process that was killed; the
    // next test restarts every service before it places anything.
  });
});

describe("backfill", () => {
  it("gives a database from before the outbox one creation event per row on start", async () => {
    const logs = {
      users: await readLog(userEvents()),
      products: await readLog(productEvents()),
      orders: await readLog(orderEvents()),
    };
    // What each service holds now: accounts and orders never change, products as last changed.
    const accounts = new Map(logs.users.events.map((e) => [payload<User>(e, "user").id, payload<User>(e, "user")]));
    const catalog = new Map(
      logs.products.events.map((e) => [payload<Product>(e, "product").id, payload<Product>(e, "product")]),
    );
    const orderRows = new Map(
      logs.orders.events.map((e) => [payload<Order>(e, "order").id, payload<Order>(e, "order")]),
    );
    expect(catalog.size).toBeLessThan(logs.products.events.length); // some products changed

    // Back to the schema before the outbox: no table, no sequence, no record
    // of its migration, nor of those after it, whose changes go too.
    await Promise.all(eventServices.map((service) => mesh.processes.get(service)!.stop("SIGKILL")));
    const afterOutbox: Record<EventService, string> = {
      users: "",
      products: "",
      orders: "ALTER TABLE orders DROP COLUMN request_fingerprint;",
    };
    for (const service of eventServices) {
      const journal = JSON.parse(
        readFileSync(join(root, "services", service, "drizzle", "meta", "_journal.json"), "utf8"),
      ) as {
        entries: { tag: string; when: number }[];
      };
      const outboxIndex = journal.entries.findIndex((entry) => entry.tag.endsWith("_outbox"));
      const sqlite = new Database(join(mesh.dataDir, `${service}.sqlite`));
      try {
        sqlite.exec(`${afterOutbox[service]} DROP TABLE outbox; DELETE FROM sqlite_sequence WHERE name = 'outbox'`);
        const forgotten = sqlite
          .prepare("DELETE FROM __drizzle_migrations WHERE created_at >= ?")
          .run(journal.entries[outboxIndex]!.when);
        expect(forgotten.changes).toBe(journal.entries.length - outboxIndex);
      } finally {
        sqlite.close();
      }
    }
    // users first, whose signing keys the others fetch; then products and
    // orders at once: orders then points at the products process it knew,
    // now gone, but nothing here places an order.
    await mesh.startService("users");
    await Promise.all(["products", "orders"].map((service) => mesh.startService(service as "products" | "orders")));

    const byId = <T extends { id: string }>(rows: Iterable<T>) =>
      [...rows].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const userLog = await readLog(userEvents());
    expect(sequences(userLog.events)).toEqual(oneTo(accounts.size));
    expect(new Set(kinds(userLog.events))).toEqual(new Set(["userRegistered"]));
    expect(userLog.events.map((e) => payload(e, "user"))).toEqual(byId(accounts.values()));
    for (const event of userLog.events)
      expect(occurMs(event)).toBe(timestampMs(payload<User>(event, "user").createTime!));

    const productLog = await readLog(productEvents());
    expect(sequences(productLog.events)).toEqual(oneTo(catalog.size));
    expect(new Set(kinds(productLog.events))).toEqual(new Set(["productCreated"]));
    expect(productLog.events.map((e) => payload(e, "product"))).toEqual(byId(catalog.values()));
    expect(productLog.events.map((e) => payload(e, "product"))).toEqual(await allProducts());

    const orderLog = await readLog(orderEvents());
    expect(sequences(orderLog.events)).toEqual(oneTo(orderRows.size));
    expect(new Set(kinds(orderLog.events))).toEqual(new Set(["orderPlaced"]));
    expect(orderLog.events.map((e) => payload(e, "order"))).toEqual(byId(orderRows.values()));

    expect(mesh.processes.get("products")!.logs).toContainEqual(expect.objectContaining({ events: catalog.size }));

    // New writes follow on. (That a start with events in the outbox records
    // none is what the restarts in the tests above show: their logs came
    // back unchanged.)
    const { product: cup } = await products().createProduct({ name: "Cup", price: price(800n) });
    expect(
      (await readLog(productEvents(), productLog.head)).events.map((e) => [e.sequence, payload(e, "product")]),
    ).toEqual([[BigInt(catalog.size) + 1n, cup]]);
  });
});

describe("stopping a service with readers attached", () => {
  it("ends open event streams with UNAVAILABLE so that SIGTERM drains in well under the grace period", async () => {
    // A products of its own, with a long grace period: without ending the
    // streams, the drain would wait all of it.
    const own = await mesh.startExtra("products", { ...streamEnv, SHUTDOWN_DELAY: "0s", SHUTDOWN_GRACE: "20s" });
    const events = mesh.clientAt("products", own.address, undefined, "user-orders");
    const { head } = await readLog(events);
    const reader = new Follower(events, head);
    expect((await reader.next()).event).toBeUndefined();
    const started = performance.now();
    // Heartbeats until the stream ends: it must end with an error, not quietly.
    const ending = (async () => {
      try {
        for (;;) await reader.next(30_000);
      } catch (error) {
        return error;
      }
    })();
    expect(await own.stop("SIGTERM")).toBe(0);
    const tookMs = performance.now() - started;
    expect(tookMs).toBeLessThan(10_000);
    const error = await ending;
    expect(error).toBeInstanceOf(Error);
    expect((error as { code?: unknown }).code).toBe(Code.Unavailable);
  });
});
