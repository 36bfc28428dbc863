// The products service process: the catalog.
import { fileURLToPath } from "node:url";
import { authInterceptor, hosted, loadTokenVerifier, openDatabase, readDatabasePath, runService } from "@shopmesh/chassis";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import * as schema from "./db/schema.js";
import { ProductStore } from "./product-store.js";
import { createProductsService } from "./products-service.js";


await runService({
  name: "products",
  defaultPort: 50052,
  async setup({ env }) {
    const verifier = await loadTokenVerifier(env);
    const database = openDatabase({
      path: readDatabasePath("products", env),
      migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
      schema,
    });
    const reads = ["GetProduct", "ListProducts", "BatchGetProducts"].map((name) => `${ProductsService.typeName}.${name}`);
    return {
      services: [hosted(ProductsService, createProductsService(new ProductStore(database.db)))],
      interceptors: [authInterceptor({ verifier, anonymous: reads })],
      close: () => database.close(),
    };
  },
});
