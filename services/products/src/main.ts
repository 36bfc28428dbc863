// The products service process: the catalog.
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
import { ProductsService } from "@shopmesh/sdk/products/v1";
import * as schema from "./db/schema.js";
import { ProductStore } from "./product-store.js";
import { createProductsService } from "./products-service.js";

await runService({
  name: "products",
  defaultPort: 50052,
  async setup({ env, logger, tls }) {
    const verifier = await loadTokenVerifier(env, logger, tls);
    const database = openDatabase({
      path: readDatabasePath("products", env),
      migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
      schema,
    });
    const store = new ProductStore(database, {
      streams: readEventStreamOptions(env),
      cacheEntries: envReader(env).int("PRODUCT_CACHE_ENTRIES", 10_000, { min: 0, max: 10_000_000 }),
    });
    const backfilled = store.backfillEvents();
    if (backfilled > 0)
      logger.info({ events: backfilled }, "recorded ProductCreated for products that predate the outbox");
    const { getProduct, listProducts, batchGetProducts } = ProductsService.method;
    const reads = [getProduct, listProducts, batchGetProducts];
    return {
      services: [hosted(ProductsService, createProductsService(store))],
      events: store.events,
      verifier,
      interceptors: [authInterceptor({ verifier, anonymous: reads })],
      close: () => {
        verifier.close();
        database.close();
      },
    };
  },
});
