// The products service process: the catalog.
import { fileURLToPath } from "node:url";
import {
  authInterceptor,
  hosted,
  loadTokenVerifier,
  openDatabase,
  readDatabasePath,
  readEventStreamOptions,
  readEventsRelayConfig,
  runService,
  startNatsRelay,
} from "@shopmesh/chassis";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import * as schema from "./db/schema.js";
import { ProductStore } from "./product-store.js";
import { createProductsService } from "./products-service.js";


await runService({
  name: "products",
  defaultPort: 50052,
  async setup({ env, logger }) {
    const relayConfig = readEventsRelayConfig(env);
    const verifier = await loadTokenVerifier(env);
    const database = openDatabase({
      path: readDatabasePath("products", env),
      migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
      schema,
    });
    const store = new ProductStore(database.db, readEventStreamOptions(env));
    const backfilled = store.backfillEvents();
    if (backfilled > 0) logger.info({ events: backfilled }, "recorded ProductCreated for products that predate the outbox");
    // The StreamEvents RPC is served either way; with EVENTS_RELAY=nats the
    // outbox is also copied to JetStream for readers that scale out there.
    const relay = relayConfig.kind === "nats" ? startNatsRelay({ ...relayConfig, service: "products", eventLog: store.events, logger }) : undefined;
    const reads = ["GetProduct", "ListProducts", "BatchGetProducts"].map((name) => `${ProductsService.typeName}.${name}`);
    return {
      services: [hosted(ProductsService, createProductsService(store))],
      interceptors: [authInterceptor({ verifier, anonymous: reads })],
      close: async () => {
        await relay?.close();
        database.close();
      },
    };
  },
});
