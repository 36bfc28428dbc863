// In-memory users, orders and products services for testing the aggregator
// without processes: each one plays a script (answer, fail, hang, delay, or
// wait for the test) and records every call it sees.
import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport, type HandlerContext } from "@connectrpc/connect";
import { newId } from "@shopmesh/chassis";
import { OrderSchema, OrdersService, type Order } from "@shopmesh/sdk/orders/v1";
import { ProductSchema, ProductsService, type Product } from "@shopmesh/sdk/products/v1";
import { Role, UserSchema, UsersService, type User } from "@shopmesh/sdk/users/v1";
import type { AggregatorSettings } from "../../src/aggregate.js";

export type Step =
  | { kind: "answer" }
  | { kind: "fail"; code: Code }
  | { kind: "hang" }
  | { kind: "delay"; ms: number; then?: Step }
  | { kind: "until"; released: Promise<void>; then?: Step };

export const answer: Step = { kind: "answer" };
export const hang: Step = { kind: "hang" };
export const fail = (code: Code): Step => ({ kind: "fail", code });
export const delay = (ms: number, then: Step = answer): Step => ({ kind: "delay", ms, then });
/** Waits until the test resolves `released` (or the call is aborted), then plays `then`. */
export const until = (released: Promise<void>, then: Step = answer): Step => ({ kind: "until", released, then });

/** One call a fake saw. */
export interface SeenCall {
  method: string;
  request: unknown;
  /** The deadline the call arrived with. */
  timeoutMs: number | undefined;
  authorization: string | null;
  signal: AbortSignal;
  /** performance.now() when the call arrived. */
  at: number;
}

/** What a fake does, call by call. */
export class Script {
  readonly calls: SeenCall[] = [];
  #next: Step[] = [];
  #otherwise: Step = answer;

  /** The next calls play these steps, in order; after them, `always`'s step. */
  andThen(...steps: Step[]): this {
    this.#next.push(...steps);
    return this;
  }

  /** Every call after the queued ones plays this step. */
  always(step: Step): this {
    this.#otherwise = step;
    return this;
  }

  async play(method: string, request: unknown, context: HandlerContext): Promise<void> {
    this.calls.push({
      method,
      request,
      timeoutMs: context.timeoutMs(),
      authorization: context.requestHeader.get("authorization"),
      signal: context.signal,
      at: performance.now(),
    });
    await run(this.#next.shift() ?? this.#otherwise, context.signal);
  }
}

async function run(step: Step, signal: AbortSignal): Promise<void> {
  switch (step.kind) {
    case "answer":
      return;
    case "fail":
      throw new ConnectError(`scripted ${Code[step.code]}`, step.code);
    case "hang":
      return whenReleased(new Promise<void>(() => {}), signal);
    case "delay":
      await sleep(step.ms, undefined, { signal });
      return run(step.then ?? answer, signal);
    case "until":
      await whenReleased(step.released, signal);
      return run(step.then ?? answer, signal);
  }
}

/** Settles when `release` does, or rejects when the call is aborted first. */
function whenReleased(release: Promise<void>, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    void release.then(resolve);
  });
}

/** The data the fakes serve. */
export interface World {
  users: User[];
  orders: Order[];
  products: Product[];
}

/** Typed clients for in-memory users, orders and products serving `world`, each with its script. */
export function fakeDependencies(world: World) {
  const scripts = { users: new Script(), orders: new Script(), products: new Script() };
  const transport = createRouterTransport(({ service }) => {
    service(UsersService, {
      async getUser(request, context) {
        await scripts.users.play("GetUser", request, context);
        const user = world.users.find((u) => u.id === request.userId);
        if (!user) throw new ConnectError(`user ${request.userId} not found`, Code.NotFound);
        return { user };
      },
    });
    service(OrdersService, {
      async listOrders(request, context) {
        await scripts.orders.play("ListOrders", request, context);
        const mine = world.orders.filter((o) => o.userId === request.userId);
        const start = request.pageToken === "" ? 0 : Number(request.pageToken);
        if (!Number.isInteger(start))
          throw new ConnectError("page_token: is not a token this service issued", Code.InvalidArgument);
        const size = request.pageSize || 20;
        const end = start + size;
        return { orders: mine.slice(start, end), nextPageToken: end < mine.length ? String(end) : "" };
      },
    });
    service(ProductsService, {
      async batchGetProducts(request, context) {
        await scripts.products.play("BatchGetProducts", request, context);
        if (request.productIds.length === 0 || request.productIds.length > 500) {
          throw new ConnectError("product_ids: must name 1 to 500 ids", Code.InvalidArgument);
        }
        const found = new Map(world.products.map((p) => [p.id, p]));
        return {
          products: request.productIds.flatMap((id) => (found.has(id) ? [found.get(id)!] : [])),
          missingProductIds: request.productIds.filter((id) => !found.has(id)),
        };
      },
    });
  });
  return {
    scripts,
    clients: {
      users: createClient(UsersService, transport),
      orders: createClient(OrdersService, transport),
      products: createClient(ProductsService, transport),
    },
  };
}

export function makeUser(displayName = "Ada"): User {
  const id = newId();
  return create(UserSchema, {
    id,
    email: `${id}@shopmesh.test`,
    displayName,
    role: Role.CUSTOMER,
    createTime: timestampNow(),
  });
}

export function makeProduct(name: string, minorUnits: bigint): Product {
  return create(ProductSchema, {
    id: newId(),
    name,
    description: `${name}, as the catalog describes it`,
    price: { currencyCode: "EUR", minorUnits },
    createTime: timestampNow(),
  });
}

export function makeOrder(userId: string, lines: { product: Product; quantity: number }[]): Order {
  const total = lines.reduce((sum, line) => sum + line.product.price!.minorUnits * BigInt(line.quantity), 0n);
  return create(OrderSchema, {
    id: newId(),
    userId,
    requestId: newId(),
    createTime: timestampNow(),
    total: { currencyCode: "EUR", minorUnits: total },
    lines: lines.map((line) => ({
      productId: line.product.id,
      quantity: line.quantity,
      unitPrice: line.product.price,
    })),
  });
}

/** Settings for tests: no retries, hedges or stale copies unless a test asks for them. */
export function testSettings(overrides: Partial<AggregatorSettings> = {}): AggregatorSettings {
  return {
    defaultBudgetMs: 2000,
    reserveMs: 15,
    dependencies: {
      users: { timeoutMs: 500 },
      orders: { timeoutMs: 500 },
      products: { timeoutMs: 500 },
    },
    breaker: { failures: 5, cooldownMs: 200 },
    retry: { retries: 0, baseDelayMs: 10, maxDelayMs: 50 },
    staleOrders: { maxEntries: 0, maxAgeMs: 60_000 },
    ...overrides,
  };
}

/** A breaker log that keeps what it is told. */
export function recordingLog() {
  const entries: { level: "warn" | "info"; fields: object; message: string }[] = [];
  return {
    entries,
    warn: (fields: object, message: string) => void entries.push({ level: "warn", fields, message }),
    info: (fields: object, message: string) => void entries.push({ level: "info", fields, message }),
  };
}
