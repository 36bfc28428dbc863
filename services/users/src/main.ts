// The users service process: accounts, sign-up and sign-in, access tokens.
import { fileURLToPath } from "node:url";
import {
  ConfigError,
  authInterceptor,
  createTokenSigner,
  createTokenVerifier,
  defaultKeyFiles,
  ensureKeyPair,
  envReader,
  hosted,
  openDatabase,
  readDatabasePath,
  readDataDir,
  readEventStreamOptions,
  readPem,
  runService,
} from "@shopmesh/chassis";
import { UsersService } from "@shopmesh/sdk/users/v1";
import * as schema from "./db/schema.js";
import { UserStore } from "./user-store.js";
import { createUsersService } from "./users-service.js";

await runService({
  name: "users",
  defaultPort: 50051,
  async setup({ env, logger }) {
    const read = envReader(env);
    const keys = defaultKeyFiles(readDataDir(env));
    const privateKeyFile = read.string("AUTH_PRIVATE_KEY_FILE", keys.privateKeyFile);
    const publicKeyFile = read.string("AUTH_PUBLIC_KEY_FILE", keys.publicKeyFile);
    if (ensureKeyPair({ privateKeyFile, publicKeyFile })) {
      logger.info({ privateKeyFile, publicKeyFile }, "generated a new token key pair");
    }
    const signer = await createTokenSigner(
      readPem(privateKeyFile, "token signing key"),
      read.durationMs("TOKEN_TTL", "15m") / 1000,
    );
    const verifier = await createTokenVerifier(readPem(publicKeyFile, "token verifying key"));
    const adminEmails = new Set(
      read
        .string("ADMIN_EMAILS", "")
        .split(",")
        .map((email) => email.trim().toLowerCase())
        .filter(Boolean),
    );
    const passwordCost = read.int("PASSWORD_HASH_COST", 16384, { min: 1024, max: 1 << 20 });
    if ((passwordCost & (passwordCost - 1)) !== 0)
      throw new ConfigError("PASSWORD_HASH_COST", String(passwordCost), "a power of two");
    const database = openDatabase({
      path: readDatabasePath("users", env),
      migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
      schema,
    });
    const store = new UserStore(database, readEventStreamOptions(env));
    const backfilled = store.backfillEvents();
    if (backfilled > 0)
      logger.info({ events: backfilled }, "recorded UserRegistered for accounts that predate the outbox");
    return {
      services: [hosted(UsersService, createUsersService({ store, signer, adminEmails, passwordCost }))],
      events: store.events,
      interceptors: [
        authInterceptor({
          verifier,
          anonymous: [`${UsersService.typeName}.SignUp`, `${UsersService.typeName}.SignIn`],
        }),
      ],
      close: () => database.close(),
    };
  },
});
