import type { CryptoKey } from "jose";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { importSPKI } from "jose";
import { createClient } from "@connectrpc/connect";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { createDependencyTransport } from "../client/dependency-transport.js";
import { ConfigError, envReader, maxTimerMs } from "../config.js";
import type { Logger } from "../logger.js";
import type { TlsSettings } from "../tls/tls-settings.js";
import { createKeySetVerifier, defaultMinKeyRefreshIntervalMs, type KeySetVerifier } from "./key-set-verifier.js";
import { defaultKeyFiles, readPem } from "./keys.js";
import { tokenAlgorithm } from "./tokens.js";

/**
 * The data directory of a service (DATA_DIR, default "data"), where its
 * SQLite file and, on a local mesh, the token key pair live.
 */
export function readDataDir(env: Record<string, string | undefined> = process.env): string {
  return envReader(env).string("DATA_DIR", "data");
}

/** The path of a service's database: DB_PATH, or `<DATA_DIR>/<service>.sqlite`. */
export function readDatabasePath(service: string, env: Record<string, string | undefined> = process.env): string {
  return envReader(env).string("DB_PATH", join(readDataDir(env), `${service}.sqlite`));
}

/**
 * Whether the process runs for development (DEVELOPMENT_MODE=on): only then
 * may a service make up what production must be given, such as a signing key.
 */
export function readDevelopmentMode(env: Record<string, string | undefined> = process.env): boolean {
  return envReader(env).bool("DEVELOPMENT_MODE", false);
}

/** How long a fetch of the signing keys that found nothing new holds off the next (SIGNING_KEYS_REFRESH_INTERVAL). */
export function readKeyRefreshIntervalMs(env: Record<string, string | undefined> = process.env): number {
  return envReader(env).durationMs("SIGNING_KEYS_REFRESH_INTERVAL", defaultMinKeyRefreshIntervalMs, {
    min: 0,
    max: maxTimerMs,
  });
}

/**
 * The key that checks tokens with no key id: AUTH_PUBLIC_KEY (PEM text) or
 * AUTH_PUBLIC_KEY_FILE, whose default (the local mesh's key in the data
 * directory) may be absent. Long-lived service tokens are signed with it.
 */
export async function loadUnnamedKey(
  env: Record<string, string | undefined> = process.env,
): Promise<CryptoKey | undefined> {
  const read = envReader(env);
  const inline = read.optionalString("AUTH_PUBLIC_KEY");
  const file = read.optionalString("AUTH_PUBLIC_KEY_FILE");
  const fallback = defaultKeyFiles(readDataDir(env)).publicKeyFile;
  const pem =
    inline ??
    (file !== undefined
      ? readPem(file, "token verifying key")
      : existsSync(fallback)
        ? readPem(fallback, "token verifying key")
        : undefined);
  if (pem === undefined) return undefined;
  try {
    return (await importSPKI(pem, tokenAlgorithm)) as CryptoKey;
  } catch {
    const variable = inline !== undefined ? "AUTH_PUBLIC_KEY" : "AUTH_PUBLIC_KEY_FILE";
    throw new ConfigError(
      variable,
      inline !== undefined ? `${inline.slice(0, 40)}${inline.length > 40 ? "…" : ""}` : (file ?? fallback),
      "an Ed25519 public key in PEM (-----BEGIN PUBLIC KEY-----)",
    );
  }
}

/**
 * The token verifier of every service but users: it fetches the published
 * signing keys from the users service at USERS_TARGET (default
 * 127.0.0.1:50051), over mutual TLS unless TLS=off, and keeps them (see
 * {@link createKeySetVerifier}). `close`
 * closes its connection to users.
 */
export async function loadTokenVerifier(
  env: Record<string, string | undefined>,
  logger: Logger,
  tls: TlsSettings,
): Promise<KeySetVerifier & { close(): void }> {
  // Over mutual TLS like any dependency: a key set from anyone but users would let its holder sign tokens.
  const transport = createDependencyTransport(envReader(env).target("USERS_TARGET", "127.0.0.1:50051"), logger, {
    service: "users",
    tls,
  });
  const users = createClient(UsersService, transport);
  const verifier = createKeySetVerifier({
    async fetchKeys() {
      const { keys } = await users.getSigningKeys({}, { timeoutMs: 2000 });
      return keys.map((key) => ({ keyId: key.keyId, publicKey: key.publicKey }));
    },
    unnamedKey: await loadUnnamedKey(env),
    minRefreshIntervalMs: readKeyRefreshIntervalMs(env),
    logger,
  });
  return Object.assign(verifier, { close: () => transport.close() });
}
