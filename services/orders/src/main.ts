// The orders service process: places orders, priced by the products service.
import { fileURLToPath } from "node:url";
import {
  authInterceptor,
  createDependencyTransport,
  envReader,
  hosted,
  loadTokenVerifier,
  openDatabase,
  readDatabasePath,
  readEventStreamOptions,
  runService,
} from "@shopmesh/chassis";
import { createClient } from "@shopmesh/sdk";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import * as schema from "./db/schema.js";
import { OrderStore } from "./order-store.js";
import { createOrdersService } from "./orders-service.js";

await runService({
  name: "orders",
  defaultPort: 50053,
  async setup({ env, logger, tls }) {
    const read = envReader(env);
    const verifier = await loadTokenVerifier(env, logger, tls);
    const productsTransport = createDependencyTransport(read.target("PRODUCTS_TARGET", "127.0.0.1:50052"), logger, {
      service: "products",
      tls,
    });
    const database = openDatabase({
      path: readDatabasePath("orders", env),
      migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
      schema,
    });
    const store = new OrderStore(database, {
      streams: readEventStreamOptions(env),
      cacheEntries: read.int("ORDER_CACHE_ENTRIES", 10_000, { min: 0, max: 10_000_000 }),
    });
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
      verifier,
      interceptors: [authInterceptor({ verifier })],
      close: async () => {
        productsTransport.close();
        verifier.close();
        database.close();
      },
    };
  },
});
