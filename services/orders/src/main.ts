// The orders service process: places orders, priced by the products service.
import { fileURLToPath } from "node:url";
import {
  authInterceptor,
  envReader,
  hosted,
  loadTokenVerifier,
  openDatabase,
  readDatabasePath,
  readEventStreamOptions,
  runService,
} from "@shopmesh/chassis";
import { createClient, createTransport } from "@shopmesh/sdk";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import * as schema from "./db/schema.js";
import { OrderStore } from "./order-store.js";
import { createOrdersService } from "./orders-service.js";


await runService({
  name: "orders",
  defaultPort: 50053,
  async setup({ env, logger }) {
    const read = envReader(env);
    const verifier = await loadTokenVerifier(env);
    // Products coming back should be found within about a second, not after
    // grpc-js's default reconnect backoff (1 s growing 1.6 times per failed
    // attempt, up to two minutes): the experiment measured orders refusing
    // for over 2 s after products was ready again.
    const productsTransport = createTransport({
      target: read.string("PRODUCTS_TARGET", "127.0.0.1:50052"),
      channelOptions: { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 1000 },
    });
    const database = openDatabase({
      path: readDatabasePath("orders", env),
      migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
      schema,
    });
    const store = new OrderStore(database.db, readEventStreamOptions(env));
    const backfilled = store.backfillEvents();
    if (backfilled > 0) logger.info({ events: backfilled }, "recorded OrderPlaced for orders that predate the outbox");
    const service = createOrdersService({
      store,
      products: createClient(ProductsService, productsTransport),
      productsTimeoutMs: read.durationMs("PRODUCTS_TIMEOUT", "1s"),
    });
    return {
      services: [hosted(OrdersService, service)],
      events: store.events,
      interceptors: [authInterceptor({ verifier })],
      close: async () => {
        productsTransport.close();
        database.close();
      },
    };
  },
});
