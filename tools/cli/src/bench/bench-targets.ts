import { createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { Consistency, UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { EchoService } from "../../../../gen/shopmesh/echo/v1/echo_pb.js";
import type { BenchProcessName } from "./bench-mesh.js";
import type { BenchData } from "./bench-seed.js";

/** Something the bench loads: one RPC of one process. */
export interface BenchTarget {
  /** Stable key used in the JSON report. */
  key: "bare" | "users.GetUser" | "products.GetProduct" | "orders.ListOrders" | "user-orders.GetUserOrders" | "user-orders.GetUserOrders.eventual";
  /** What the report calls it. */
  title: string;
  /** The process that answers it. */
  process: BenchProcessName;
  /** Which processes do work for one call (for CPU per call). */
  involves: BenchProcessName[];
  call: () => Promise<unknown>;
  /** Answers that came back degraded (GetUserOrders with a fallback applied): counted, still timed. */
  degraded: number;
}

/**
 * The baseline, the four main reads and GetUserOrders with EVENTUAL
 * consistency (from user-orders' projection, no downstream call), each on its
 * own SDK transport (grpc-js-backed, the default of createTransport), with
 * the seeded customer's token where the call needs one.
 */
export function createBenchTargets(address: (name: BenchProcessName) => string, data: BenchData): { targets: BenchTarget[]; close: () => void } {
  const transports: GrpcTransport[] = [];
  const transport = (name: BenchProcessName, token?: string) => {
    const made = createTransport({ target: address(name), token });
    transports.push(made);
    return made;
  };
  const { userId, token } = data.customer;
  const bare = createClient(EchoService, transport("bare-baseline"));
  const users = createClient(UsersService, transport("users", token));
  const products = createClient(ProductsService, transport("products"));
  const orders = createClient(OrdersService, transport("orders", token));
  const userOrders = createClient(UserOrdersService, transport("user-orders", token));
  const eventualUserOrders = createClient(UserOrdersService, transport("user-orders", token));
  let next = 0;
  const targets: BenchTarget[] = [
    { key: "bare", title: "bare grpc-js server, empty unary", process: "bare-baseline", involves: ["bare-baseline"], call: () => bare.echo({}), degraded: 0 },
    { key: "users.GetUser", title: "users.GetUser", process: "users", involves: ["users"], call: () => users.getUser({ userId }), degraded: 0 },
    {
      key: "products.GetProduct",
      title: "products.GetProduct",
      process: "products",
      involves: ["products"],
      call: () => products.getProduct({ productId: data.productIds[next++ % data.productIds.length]! }),
      degraded: 0,
    },
    { key: "orders.ListOrders", title: "orders.ListOrders", process: "orders", involves: ["orders"], call: () => orders.listOrders({ userId }), degraded: 0 },
    {
      key: "user-orders.GetUserOrders",
      title: "user-orders.GetUserOrders",
      process: "user-orders",
      involves: ["user-orders", "users", "orders", "products"],
      call: async () => {
        const response = await userOrders.getUserOrders({ userId });
        if (response.degradations.length > 0) userOrdersTarget.degraded++;
        return response;
      },
      degraded: 0,
    },
    {
      key: "user-orders.GetUserOrders.eventual",
      title: "user-orders.GetUserOrders, EVENTUAL",
      process: "user-orders",
      involves: ["user-orders"],
      call: () => eventualUserOrders.getUserOrders({ userId, consistency: Consistency.EVENTUAL }),
      degraded: 0,
    },
  ];
  const userOrdersTarget = targets.find((target) => target.key === "user-orders.GetUserOrders")!;
  return { targets, close: () => transports.forEach((made) => made.close()) };
}
