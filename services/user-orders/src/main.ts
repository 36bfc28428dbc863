// The user-orders process: builds a user's view from users, orders and
// products, calling them synchronously within the caller's deadline.
import { authInterceptor, hosted, loadTokenVerifier, runService } from "@shopmesh/chassis";
import { createClient, createTransport, type CreateTransportOptions } from "@shopmesh/sdk";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { createUserOrdersAggregator } from "./aggregate.js";
import { readAggregatorSettings, readDependencyTargets } from "./settings.js";
import { createUserOrdersService } from "./user-orders-service.js";


await runService({
  name: "user-orders",
  defaultPort: 50054,
  async setup({ env, logger }) {
    const settings = readAggregatorSettings(env);
    const targets = readDependencyTargets(env);
    const verifier = await loadTokenVerifier(env);
    // One channel per dependency, reused by every call. The caller's token is
    // forwarded per call, so the transports carry none of their own.
    // A dependency that comes back should be found within about a second, not
    // after grpc-js's default reconnect backoff of up to two minutes.
    const channelOptions: CreateTransportOptions["channelOptions"] = {
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 1000,
    };
    const transports = {
      users: createTransport({ target: targets.users, channelOptions }),
      orders: createTransport({ target: targets.orders, channelOptions }),
      products: createTransport({ target: targets.products, channelOptions }),
    };
    const aggregator = createUserOrdersAggregator({
      users: createClient(UsersService, transports.users),
      orders: createClient(OrdersService, transports.orders),
      products: createClient(ProductsService, transports.products),
      settings,
      log: logger,
    });
    logger.info({ targets, settings }, "dependencies");
    return {
      services: [hosted(UserOrdersService, createUserOrdersService(aggregator))],
      interceptors: [authInterceptor({ verifier })],
      close: () => {
        for (const transport of Object.values(transports)) transport.close();
      },
    };
  },
});
