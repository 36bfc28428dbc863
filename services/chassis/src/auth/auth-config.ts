import { join } from "node:path";
import { envReader } from "../config.js";
import { defaultKeyFiles, readPem } from "./keys.js";
import { createTokenVerifier, type TokenVerifier } from "./tokens.js";

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
 * The token verifier every service uses: the Ed25519 public key from
 * AUTH_PUBLIC_KEY (PEM text) or AUTH_PUBLIC_KEY_FILE (default: the local
 * mesh's key in the data directory).
 */
export async function loadTokenVerifier(env: Record<string, string | undefined> = process.env): Promise<TokenVerifier> {
  const read = envReader(env);
  const inline = read.optionalString("AUTH_PUBLIC_KEY");
  const pem =
    inline ??
    readPem(
      read.string("AUTH_PUBLIC_KEY_FILE", defaultKeyFiles(readDataDir(env)).publicKeyFile),
      "token verifying key",
    );
  return createTokenVerifier(pem);
}
