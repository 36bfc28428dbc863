// The users service process: accounts, sign-up and sign-in, access tokens.
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  ConfigError,
  authInterceptor,
  createKeySetVerifier,
  defaultKeyFiles,
  envReader,
  hosted,
  loadUnnamedKey,
  maxTimerMs,
  openDatabase,
  readDatabasePath,
  readDataDir,
  readDevelopmentMode,
  readEventStreamOptions,
  readPem,
  runService,
} from "@shopmesh/chassis";
import { UsersService } from "@shopmesh/sdk/users/v1";
import * as schema from "./db/schema.js";
import { scheduleKeyRotation } from "./key-rotation-schedule.js";
import { SigningKeyStore } from "./signing-key-store.js";
import { defaultSignInLimits, SignInThrottle } from "./sign-in-throttle.js";
import { UserStore } from "./user-store.js";
import { createUsersService, normaliseEmail } from "./users-service.js";

await runService({
  name: "users",
  defaultPort: 50051,
  async setup({ env, logger }) {
    const read = envReader(env);
    const keys = SigningKeyStore.open(read.string("AUTH_KEYS_DIR", join(readDataDir(env), "auth", "signing-keys")), {
      tokenTtlMs: read.durationMs("TOKEN_TTL", "15m", { min: 1000, max: maxTimerMs }),
      clockSkewMs: read.durationMs("TOKEN_CLOCK_SKEW", "1m", { max: maxTimerMs }),
    });
    if (keys.empty) {
      // The first key: the one the operator gives, or (for development only) a new one.
      const given = read.optionalString("AUTH_PRIVATE_KEY_FILE");
      const localMeshKey = defaultKeyFiles(readDataDir(env)).privateKeyFile;
      const file = given ?? (existsSync(localMeshKey) ? localMeshKey : undefined);
      if (file !== undefined) {
        const imported = keys.importFirst(readPem(file, "token signing key"));
        logger.info({ keyId: imported.keyId, from: file, directory: keys.directory }, "imported the token signing key");
      } else if (readDevelopmentMode(env)) {
        const made = keys.rotate();
        logger.info({ keyId: made.keyId, directory: keys.directory }, "made a token signing key (development mode)");
      } else {
        throw new ConfigError(
          "AUTH_PRIVATE_KEY_FILE",
          "",
          `an Ed25519 private key (PKCS#8 PEM) to sign tokens with, since ${keys.directory} (AUTH_KEYS_DIR) holds no signing key; DEVELOPMENT_MODE=on makes one`,
        );
      }
    }
    const signer = keys.signer();
    // users checks tokens with its own keys, so it never waits for itself.
    const verifier = createKeySetVerifier({
      fetchKeys: async () => keys.published(),
      unnamedKey: await loadUnnamedKey(env),
      minRefreshIntervalMs: 0,
    });
    const rotationIntervalMs = read.durationMs("KEY_ROTATION_INTERVAL", 0, { max: maxTimerMs });
    const stopRotation =
      rotationIntervalMs > 0 ? scheduleKeyRotation(keys, rotationIntervalMs, logger) : () => undefined;
    const adminEmails = new Set(
      read
        .string("ADMIN_EMAILS", "")
        .split(",")
        .filter((email) => email.trim() !== "")
        .map((email) => {
          try {
            return normaliseEmail("ADMIN_EMAILS", email);
          } catch {
            throw new ConfigError("ADMIN_EMAILS", email, "email addresses separated by commas");
          }
        }),
    );
    const passwordCost = read.int("PASSWORD_HASH_COST", 16384, { min: 1024, max: 1 << 20 });
    if ((passwordCost & (passwordCost - 1)) !== 0)
      throw new ConfigError("PASSWORD_HASH_COST", String(passwordCost), "a power of two");
    const failures = { min: 1, max: 1_000_000 };
    const throttle = new SignInThrottle({
      perAccountAndAddress: read.int(
        "SIGN_IN_FAILURES_PER_ACCOUNT_ADDRESS",
        defaultSignInLimits.perAccountAndAddress,
        failures,
      ),
      perAddress: read.int("SIGN_IN_FAILURES_PER_ADDRESS", defaultSignInLimits.perAddress, failures),
      perAccount: read.int("SIGN_IN_FAILURES_PER_ACCOUNT", defaultSignInLimits.perAccount, failures),
      baseDelayMs: read.durationMs("SIGN_IN_BASE_DELAY", defaultSignInLimits.baseDelayMs, { min: 1, max: maxTimerMs }),
      maxDelayMs: read.durationMs("SIGN_IN_MAX_DELAY", defaultSignInLimits.maxDelayMs, { min: 1, max: maxTimerMs }),
      windowMs: read.durationMs("SIGN_IN_FAILURE_WINDOW", defaultSignInLimits.windowMs, { min: 1, max: maxTimerMs }),
    });
    const database = openDatabase({
      path: readDatabasePath("users", env),
      migrationsFolder: fileURLToPath(new URL("../drizzle", import.meta.url)),
      schema,
    });
    const store = new UserStore(database, {
      streams: readEventStreamOptions(env),
      cacheEntries: read.int("USER_CACHE_ENTRIES", 10_000, { min: 0, max: 10_000_000 }),
    });
    const renormalised = store.renormaliseEmails((email) => {
      try {
        return normaliseEmail("email", email);
      } catch {
        return undefined;
      }
    });
    if (renormalised.changed > 0 || renormalised.left.length > 0)
      logger.warn(
        { changed: renormalised.changed, leftAsStored: renormalised.left },
        "stored emails brought to the current normal form; those left clash with another account or are not valid",
      );
    const backfilled = store.backfillEvents();
    if (backfilled > 0)
      logger.info({ events: backfilled }, "recorded UserRegistered for accounts that predate the outbox");
    return {
      services: [
        hosted(
          UsersService,
          createUsersService({
            store,
            signer,
            keys,
            adminEmails,
            passwordCost,
            throttle,
            onRotate: (keyId, previousKeyId) => logger.info({ keyId, previousKeyId }, "rotated the token signing key"),
          }),
        ),
      ],
      events: store.events,
      verifier,
      interceptors: [
        authInterceptor({
          verifier,
          anonymous: [UsersService.method.signUp, UsersService.method.signIn, UsersService.method.getSigningKeys],
        }),
      ],
      close: () => {
        stopRotation();
        database.close();
      },
    };
  },
});
