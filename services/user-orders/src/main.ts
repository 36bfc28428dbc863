// The user-orders process: builds a user's view from users, orders and
// products, either calling them synchronously within the caller's deadline
// (STRONG) or from its own projection of their event streams (EVENTUAL).
import { fileURLToPath } from "node:url";
import {
  ConfigError,
  authInterceptor,
  createDependencyTransport,
  envReader,
  hosted,
  loadTokenVerifier,
  openDatabase,
  type OpenDatabase,
  readDatabasePath,
  runService,
} from "@shopmesh/chassis";
import { createClient } from "@shopmesh/sdk";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { createUserOrdersAggregator } from "./aggregate.js";
import * as schema from "./db/schema.js";
import { grpcEventSource, readEventSourceConfig, type EventSource } from "./projection/event-source.js";
import { Projection } from "./projection/projection.js";
import { readAggregatorSettings, readDependencyTargets, userOrdersAdmission } from "./settings.js";
import { createUserOrdersService } from "./user-orders-service.js";

await runService({
  name: "user-orders",
  defaultPort: 50054,
  admissionDefaults: userOrdersAdmission,
  async setup({ env, logger, tls }) {
    const settings = readAggregatorSettings(env);
    const targets = readDependencyTargets(env);
    const verifier = await loadTokenVerifier(env, logger, tls);
    const transports = {
      users: createDependencyTransport(targets.users, logger, { service: "users", tls }),
      orders: createDependencyTransport(targets.orders, logger, { service: "orders", tls }),
      products: createDependencyTransport(targets.products, logger, { service: "products", tls }),
    };
    // One client per dependency, for the STRONG views and the projection's streams alike.
    const clients = {
      users: createClient(UsersService, transports.users),
      orders: createClient(OrdersService, transports.orders),
      products: createClient(ProductsService, transports.products),
    };
    const aggregator = createUserOrdersAggregator({
      ...clients,
      settings,
      log: logger,
    });
    logger.info({ targets, settings }, "dependencies");

    // The projection behind EVENTUAL views (PROJECTION=off turns it off). It
    // reads each service's StreamEvents, which its certificate (mutual TLS)
    // entitles it to, or JetStream when EVENTS_SOURCE=nats.
    const read = envReader(env);
    const projectionOn = read.oneOf("PROJECTION", ["on", "off"], "on") === "on";
    const sourceConfig = readEventSourceConfig(env);
    let projection: Projection | undefined;
    let database: OpenDatabase<typeof schema> | undefined;
    let source: EventSource | undefined;
    if (projectionOn) {
      if (tls.mode === "off" && sourceConfig.kind === "grpc") {
        throw new ConfigError(
          "TLS",
          "off",
          "TLS on: the event streams answer user-orders only when its certificate names it (or PROJECTION=off, or EVENTS_SOURCE=nats)",
        );
      }
      database = openDatabase({
        path: readDatabasePath("user-orders", env),
        migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
        schema,
      });
      // EVENTS_SOURCE=nats reads the events relayed to JetStream; by default
      // each service's own StreamEvents.
      source =
        sourceConfig.kind === "nats"
          ? // The NATS client is loaded only when it is used.
            (await import("./projection/nats-event-source.js")).natsEventSource(sourceConfig)
          : grpcEventSource({ clients });
      logger.info({ source: sourceConfig }, "projection event source");
      projection = new Projection(database.sqlite, source, logger, {
        initialBackoffMs: read.durationMs("EVENTS_RECONNECT_MIN", "100ms"),
        maxBackoffMs: read.durationMs("EVENTS_RECONNECT_MAX", "5s"),
      });
      projection.start();
    }
    return {
      services: [hosted(UserOrdersService, createUserOrdersService(aggregator, projection))],
      verifier,
      interceptors: [authInterceptor({ verifier })],
      close: async () => {
        await projection?.stop();
        source?.close();
        database?.close();
        for (const transport of Object.values(transports)) transport.close();
        verifier.close();
      },
    };
  },
});
