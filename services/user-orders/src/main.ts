// The user-orders process: builds a user's view from users, orders and
// products, either calling them synchronously within the caller's deadline
// (STRONG) or from its own projection of their event streams (EVENTUAL).
import { fileURLToPath } from "node:url";
import {
  ConfigError,
  authInterceptor,
  createDependencyTransport,
  envReader,
  type HealthRegistry,
  hosted,
  loadTokenVerifier,
  openDatabase,
  type OpenDatabase,
  readDatabasePath,
  runService,
  ServingStatus,
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
import {
  readAggregatorSettings,
  readDependencyClient,
  readDependencyTargets,
  userOrdersAdmission,
} from "./settings.js";
import { createUserOrdersService } from "./user-orders-service.js";

/** The health name that turns SERVING once the projection has caught up with every stream. */
const projectionHealthName = "projection";
let catchUpTimer: NodeJS.Timeout | undefined;

/**
 * The server answers (STRONG views work, EVENTUAL ones say they are behind)
 * before its projection has caught up; a replica that should take EVENTUAL
 * reads only once it has, is asked for the "projection" health name, which
 * turns SERVING then. The followers keep no event for it, so it is polled.
 */
function reportCatchUp(projection: Projection, health: HealthRegistry): void {
  health.set(projectionHealthName, ServingStatus.NOT_SERVING);
  catchUpTimer = setInterval(() => {
    if (!projection.states().every((state) => state.caughtUpOnce)) return;
    clearInterval(catchUpTimer);
    // A server that has begun to drain stays NOT_SERVING.
    if (health.get("") === ServingStatus.SERVING) health.set(projectionHealthName, ServingStatus.SERVING);
  }, 200);
  catchUpTimer.unref();
}

await runService({
  name: "user-orders",
  defaultPort: 50054,
  admissionDefaults: userOrdersAdmission,
  async setup({ env, logger, tls }) {
    const settings = readAggregatorSettings(env);
    const targets = readDependencyTargets(env);
    const verifier = await loadTokenVerifier(env, logger, tls);
    const kind = readDependencyClient(env);
    const transports = {
      users: createDependencyTransport(targets.users, logger, { service: "users", tls, kind }),
      orders: createDependencyTransport(targets.orders, logger, { service: "orders", tls, kind }),
      products: createDependencyTransport(targets.products, logger, { service: "products", tls, kind }),
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
        cacheEntries: read.int("PROJECTION_CACHE_ENTRIES", 10_000, { min: 0, max: 10_000_000 }),
      });
      projection.start();
    }
    return {
      services: [hosted(UserOrdersService, createUserOrdersService(aggregator, projection))],
      verifier,
      interceptors: [authInterceptor({ verifier })],
      onServing: (health) => {
        if (projection) reportCatchUp(projection, health);
      },
      close: async () => {
        clearInterval(catchUpTimer);
        await projection?.stop();
        source?.close();
        database?.close();
        for (const transport of Object.values(transports)) transport.close();
        verifier.close();
      },
    };
  },
});
