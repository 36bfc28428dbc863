import { ConnectError, createClient, type Client } from "@shopmesh/sdk";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { Consistency, UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { statusName } from "@shopmesh/chassis";
import type { Operation } from "./fault-schedule.js";
import { loadAdmin, type LoadMesh } from "./load-mesh.js";

/** How often each operation comes up in the mix, out of 100. */
export const mixWeights: Record<Operation, number> = {
  SignIn: 10,
  GetProduct: 30,
  CreateOrder: 10,
  "GetUserOrders STRONG": 25,
  "GetUserOrders EVENTUAL": 25,
};

/**
 * Every call a soak makes waits this long at most: far beyond what any
 * dependency timeout lets a call take, so that a DEADLINE_EXCEEDED means a
 * hang (injected, or not) rather than a busy moment on a shared machine.
 */
export const callDeadlineMs = 5_000;

/** A customer of the soak: who it is and how it signs in. */
export interface SoakCustomer {
  userId: string;
  email: string;
  password: string;
  /** An access token valid for the whole run. */
  token: string;
  orders: Client<typeof OrdersService>;
  views: Client<typeof UserOrdersService>;
}

/** An order CreateOrder acknowledged. */
export interface AcknowledgedOrder {
  orderId: string;
  customer: number;
}

/** What one call did. */
export interface CallOutcome {
  operation: Operation;
  /** Canonical status name: "OK", "UNAVAILABLE", ... */
  code: string;
  /** A STRONG view answered with at least one degradation. */
  degraded: boolean;
  /** The error's message, for a failed call. */
  message?: string;
}

/**
 * The soak's data and clients: an admin, a catalog, a few customers, and
 * clients spread over two connections per service. `next()` runs one call
 * of the mix (drawn by weight) and says how it ended; acknowledged orders
 * are kept for the lost-write check.
 */
export class SoakMix {
  readonly acknowledged: AcknowledgedOrder[] = [];
  #turn = 0;
  #requests = 0;

  private constructor(
    readonly customers: SoakCustomer[],
    private readonly productIds: string[],
    private readonly users: Client<typeof UsersService>[],
    private readonly products: Client<typeof ProductsService>[],
    private readonly runId: string,
  ) {}

  /** Seeds `productCount` products and `customerCount` customers with two orders each, through the services' contracts. */
  static async seed(mesh: LoadMesh, counts: { products: number; customers: number }): Promise<SoakMix> {
    const users = [0, 1].map(() => createClient(UsersService, mesh.transport("users")));
    const admin = await users[0]!.signUp(loadAdmin);
    const catalog = createClient(ProductsService, mesh.transport("products", admin.session!.accessToken));
    const productIds: string[] = [];
    for (let index = 0; index < counts.products; index++) {
      const { product } = await catalog.createProduct({
        name: `Soak product ${index + 1}`,
        description: `Product ${index + 1} of the soak's catalog.`,
        price: { currencyCode: "EUR", minorUnits: BigInt(300 + ((index * 613) % 4700)) },
      });
      productIds.push(product!.id);
    }
    const runId = Date.now().toString(36);
    const customers: SoakCustomer[] = [];
    for (let index = 0; index < counts.customers; index++) {
      const email = `customer-${index + 1}@soak.shopmesh.local`;
      const password = `soak-customer-${index + 1}`;
      const { user, session } = await users[0]!.signUp({ email, password, displayName: `Soak Customer ${index + 1}` });
      const token = session!.accessToken;
      customers.push({
        userId: user!.id,
        email,
        password,
        token,
        orders: createClient(OrdersService, mesh.transport("orders", token)),
        views: createClient(UserOrdersService, mesh.transport("user-orders", token)),
      });
    }
    const products = [0, 1].map(() => createClient(ProductsService, mesh.transport("products")));
    const mix = new SoakMix(customers, productIds, users, products, runId);
    for (let index = 0; index < customers.length; index++) {
      for (let n = 0; n < 2; n++) {
        const outcome = await mix.run("CreateOrder", index);
        if (outcome.code !== "OK") throw new Error(`seeding an order failed with ${outcome.code}`);
      }
    }
    return mix;
  }

  /** The ids of every order of a customer, from ListOrders, all pages. */
  async listOrderIds(customerIndex: number): Promise<string[]> {
    const customer = this.customers[customerIndex]!;
    const ids: string[] = [];
    let pageToken = "";
    do {
      const page = await customer.orders.listOrders(
        { userId: customer.userId, pageSize: 100, pageToken },
        { timeoutMs: 10_000 },
      );
      ids.push(...page.orders.map((order) => order.id));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return ids;
  }

  /** The order ids of a customer's EVENTUAL view, all pages, as served (a duplicate shows twice). */
  async eventualOrderIds(customerIndex: number): Promise<string[]> {
    const customer = this.customers[customerIndex]!;
    const ids: string[] = [];
    let pageToken = "";
    do {
      const page = await customer.views.getUserOrders(
        { userId: customer.userId, pageSize: 100, pageToken, consistency: Consistency.EVENTUAL },
        { timeoutMs: 10_000 },
      );
      ids.push(...page.orders.map((order) => order.orderId));
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return ids;
  }

  /**
   * The operation of the next call: the mix's weights, dealt in a fixed
   * rotation through 100 slots, taken 37 apart so that the operations are
   * interleaved rather than in runs, and every window gets its share.
   */
  nextOperation(): Operation {
    const slot = (this.#turn++ * 37) % 100;
    let sum = 0;
    for (const [operation, weight] of Object.entries(mixWeights) as [Operation, number][]) {
      sum += weight;
      if (slot < sum) return operation;
    }
    return "GetProduct";
  }

  /** Runs one call of `operation` for a customer (chosen in turn when not given). */
  async run(operation: Operation, customerIndex = this.#turn % this.customers.length): Promise<CallOutcome> {
    const customer = this.customers[customerIndex]!;
    const options = { timeoutMs: callDeadlineMs };
    let degraded = false;
    try {
      switch (operation) {
        case "SignIn":
          await this.users[this.#turn % 2]!.signIn({ email: customer.email, password: customer.password }, options);
          break;
        case "GetProduct":
          await this.products[this.#turn % 2]!.getProduct(
            { productId: this.productIds[this.#turn % this.productIds.length]! },
            options,
          );
          break;
        case "CreateOrder": {
          const n = ++this.#requests;
          const { order } = await customer.orders.createOrder(
            {
              requestId: `soak-${this.runId}-${n}`,
              items: [
                { productId: this.productIds[n % this.productIds.length]!, quantity: 1 + (n % 3) },
                { productId: this.productIds[(n * 7 + 1) % this.productIds.length]!, quantity: 1 },
              ].filter((item, index, all) => all.findIndex((other) => other.productId === item.productId) === index),
            },
            options,
          );
          this.acknowledged.push({ orderId: order!.id, customer: customerIndex });
          break;
        }
        case "GetUserOrders STRONG":
          degraded =
            (await customer.views.getUserOrders({ userId: customer.userId, pageSize: 10 }, options)).degradations
              .length > 0;
          break;
        case "GetUserOrders EVENTUAL":
          await customer.views.getUserOrders(
            { userId: customer.userId, pageSize: 10, consistency: Consistency.EVENTUAL },
            options,
          );
          break;
      }
      return { operation, code: "OK", degraded };
    } catch (error) {
      const failure = ConnectError.from(error);
      return { operation, code: statusName(failure.code), degraded: false, message: failure.rawMessage };
    }
  }
}
