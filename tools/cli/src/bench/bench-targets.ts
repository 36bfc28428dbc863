import type { DescService } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import {
  createClient,
  createTransport,
  type ClientTlsOptions,
  type GrpcTransport,
  type TransportKind,
} from "@shopmesh/sdk";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { Consistency, UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { EchoService } from "../../../../gen/shopmesh/echo/v1/echo_pb.js";
import type { BenchProcessName, ProductsVariant } from "./bench-mesh.js";
import type { BenchData } from "./bench-seed.js";

/** Something the bench loads: one RPC of one process. */
export interface BenchTarget {
  /** Stable key used in the JSON report. */
  key:
    | "bare"
    | "bare.tls"
    | "users.GetUser"
    | "products.GetProduct"
    | "products.GetProduct.control"
    | "products.GetProduct.plaintext"
    | "products.GetProduct.lean"
    | "products.GetProduct.traced"
    | "orders.ListOrders"
    | "user-orders.GetUserOrders"
    | "user-orders.GetUserOrders.eventual"
    | "users.GetUser.connect-node"
    | "products.GetProduct.connect-node"
    | "orders.ListOrders.connect-node"
    | "user-orders.GetUserOrders.connect-node";
  /** What the report calls it. */
  title: string;
  /** The process that answers it. */
  process: BenchProcessName;
  /** Which processes do work for one call (for CPU per call). */
  involves: BenchProcessName[];
  /** The bare server's row this one is read against: the one over the same transport (TLS or not). */
  baseline: "bare" | "bare.tls";
  call: () => Promise<unknown>;
  /** Answers that came back degraded (GetUserOrders with a fallback applied): counted, still timed. */
  degraded: number;
}

/** The products variants' targets: GetProduct with one thing changed (see productsVariants). */
const variantTargets = {
  "products-control": {
    key: "products.GetProduct.control",
    title: "products.GetProduct, a second process",
  },
  "products-plaintext": {
    key: "products.GetProduct.plaintext",
    title: "products.GetProduct, without TLS",
  },
  "products-lean": {
    key: "products.GetProduct.lean",
    title: "products.GetProduct, without metrics",
  },
  "products-traced": {
    key: "products.GetProduct.traced",
    title: "products.GetProduct, traced and exported",
  },
} as const satisfies Record<ProductsVariant, { key: BenchTarget["key"]; title: string }>;

/** The target key of a products variant's GetProduct. */
export function variantKey(variant: ProductsVariant): BenchTarget["key"] {
  return variantTargets[variant].key;
}

/**
 * The baselines, the four main reads, GetUserOrders with EVENTUAL
 * consistency (from user-orders' projection, no downstream call) and
 * GetProduct from each products variant, each with
 * its own SDK clients (grpc-js-backed, the default of createTransport) and
 * the seeded customer's token where the call needs one. Every target spreads
 * its calls over `connections` HTTP/2 connections, taking them in turn: each
 * client has its own grpc-js channel and subchannel pool, so its own
 * connection, as separate callers would.
 */
export function createBenchTargets(
  address: (name: BenchProcessName) => string,
  data: BenchData,
  connections = 1,
  /** TLS options for a client of each process; plaintext when it gives none. */
  tls: (name: BenchProcessName) => ClientTlsOptions | undefined = () => undefined,
  /** The bare baseline's TLS port, for the same empty call over TLS; left out when undefined. */
  bareOverTls?: { address: string; tls: ClientTlsOptions },
  /** The products variants running beside the mesh. */
  variants: readonly ProductsVariant[] = [],
  /** Whether the services on the connect-node stack run beside the mesh (see connectNodeProcesses). */
  connectNode = false,
): { targets: BenchTarget[]; close: () => void } {
  // The services are read against the bare server over the transport they speak.
  const meshBaseline = bareOverTls === undefined ? "bare" : "bare.tls";
  const transports: GrpcTransport[] = [];
  const clients = <S extends DescService>(
    service: S,
    name: BenchProcessName,
    token?: string,
    kind: TransportKind = "grpc-js",
  ): (() => Client<S>) => {
    const made = Array.from({ length: connections }, () => {
      // Each connect-node transport keeps a connection of its own, as each grpc-js channel does with a local pool.
      const transport = createTransport({
        kind,
        target: address(name),
        token,
        tls: tls(name),
        channelOptions: { "grpc.use_local_subchannel_pool": 1 },
      });
      transports.push(transport);
      return createClient(service, transport);
    });
    let turn = 0;
    return () => made[turn++ % made.length]!;
  };
  const bareTls = Array.from({ length: bareOverTls === undefined ? 0 : connections }, () => {
    const transport = createTransport({
      target: bareOverTls!.address,
      tls: bareOverTls!.tls,
      channelOptions: { "grpc.use_local_subchannel_pool": 1 },
    });
    transports.push(transport);
    return createClient(EchoService, transport);
  });
  let bareTlsTurn = 0;
  const { userId, token } = data.customer;
  const bare = clients(EchoService, "bare-baseline");
  const users = clients(UsersService, "users", token);
  const products = clients(ProductsService, "products");
  const orders = clients(OrdersService, "orders", token);
  const userOrders = clients(UserOrdersService, "user-orders", token);
  const eventualUserOrders = clients(UserOrdersService, "user-orders", token);
  let next = 0;
  const targets: BenchTarget[] = [
    {
      key: "bare",
      title: "bare grpc-js server, empty unary",
      process: "bare-baseline",
      involves: ["bare-baseline"],
      baseline: "bare",
      call: () => bare().echo({}),
      degraded: 0,
    },
    ...(bareTls.length === 0
      ? []
      : [
          {
            key: "bare.tls" as const,
            title: "bare grpc-js server, empty unary, over TLS",
            process: "bare-baseline" as const,
            involves: ["bare-baseline" as const],
            baseline: "bare.tls" as const,
            call: () => bareTls[bareTlsTurn++ % bareTls.length]!.echo({}),
            degraded: 0,
          },
        ]),
    {
      key: "users.GetUser",
      title: "users.GetUser",
      process: "users",
      involves: ["users"],
      baseline: meshBaseline,
      call: () => users().getUser({ userId }),
      degraded: 0,
    },
    {
      key: "products.GetProduct",
      title: "products.GetProduct",
      process: "products",
      involves: ["products"],
      baseline: meshBaseline,
      call: () => products().getProduct({ productId: data.productIds[next++ % data.productIds.length]! }),
      degraded: 0,
    },
    {
      key: "orders.ListOrders",
      title: "orders.ListOrders",
      process: "orders",
      involves: ["orders"],
      baseline: meshBaseline,
      call: () => orders().listOrders({ userId }),
      degraded: 0,
    },
    {
      key: "user-orders.GetUserOrders",
      title: "user-orders.GetUserOrders",
      process: "user-orders",
      involves: ["user-orders", "users", "orders", "products"],
      baseline: meshBaseline,
      call: async () => {
        const response = await userOrders().getUserOrders({ userId });
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
      baseline: meshBaseline,
      call: () => eventualUserOrders().getUserOrders({ userId, consistency: Consistency.EVENTUAL }),
      degraded: 0,
    },
    ...variants.map((variant): BenchTarget => {
      const client = clients(ProductsService, variant);
      return {
        ...variantTargets[variant],
        process: variant,
        involves: [variant],
        baseline: variant === "products-plaintext" ? "bare" : meshBaseline,
        call: () => client().getProduct({ productId: data.productIds[next++ % data.productIds.length]! }),
        degraded: 0,
      };
    }),
    ...(connectNode ? connectNodeTargets() : []),
  ];
  const userOrdersTarget = targets.find((target) => target.key === "user-orders.GetUserOrders")!;

  /** The same four reads, served and called through connect-node. */
  function connectNodeTargets(): BenchTarget[] {
    const onConnectNode = <S extends DescService>(service: S, name: BenchProcessName, token?: string) =>
      clients(service, name, token, "connect-node");
    const users = onConnectNode(UsersService, "users-connect-node", token);
    const products = onConnectNode(ProductsService, "products-connect-node");
    const orders = onConnectNode(OrdersService, "orders-connect-node", token);
    const userOrders = onConnectNode(UserOrdersService, "user-orders-connect-node", token);
    const view: BenchTarget = {
      key: "user-orders.GetUserOrders.connect-node",
      title: "user-orders.GetUserOrders on connect-node",
      process: "user-orders-connect-node",
      involves: ["user-orders-connect-node", "users-connect-node", "orders-connect-node", "products-connect-node"],
      baseline: meshBaseline,
      call: async () => {
        const response = await userOrders().getUserOrders({ userId });
        if (response.degradations.length > 0) view.degraded++;
        return response;
      },
      degraded: 0,
    };
    return [
      {
        key: "users.GetUser.connect-node",
        title: "users.GetUser on connect-node",
        process: "users-connect-node",
        involves: ["users-connect-node"],
        baseline: meshBaseline,
        call: () => users().getUser({ userId }),
        degraded: 0,
      },
      {
        key: "products.GetProduct.connect-node",
        title: "products.GetProduct on connect-node",
        process: "products-connect-node",
        involves: ["products-connect-node"],
        baseline: meshBaseline,
        call: () => products().getProduct({ productId: data.productIds[next++ % data.productIds.length]! }),
        degraded: 0,
      },
      {
        key: "orders.ListOrders.connect-node",
        title: "orders.ListOrders on connect-node",
        process: "orders-connect-node",
        involves: ["orders-connect-node"],
        baseline: meshBaseline,
        call: () => orders().listOrders({ userId }),
        degraded: 0,
      },
      view,
    ];
  }
  return {
    targets,
    close: () => {
      for (const made of transports) made.close();
    },
  };
}
