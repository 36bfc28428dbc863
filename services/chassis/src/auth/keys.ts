import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Paths of the Ed25519 key pair that signs and verifies access tokens. */
export interface KeyPairFiles {
  privateKeyFile: string;
  publicKeyFile: string;
}

/** Where a local mesh keeps its key pair inside its data directory. */
export function defaultKeyFiles(dataDir: string): KeyPairFiles {
  return {
    privateKeyFile: join(dataDir, "auth", "token-signing-key.pem"),
    publicKeyFile: join(dataDir, "auth", "token-verifying-key.pem"),
  };
}

/**
 * Makes sure an Ed25519 key pair exists at the given paths, generating one
 * (PKCS#8 and SPKI PEM) when neither file exists. Files are written under a
 * temporary name and renamed, so a reader never sees half a key. Returns true
 * when it generated a new pair.
 */
export function ensureKeyPair(files: KeyPairFiles): boolean {
  const havePrivate = existsSync(files.privateKeyFile);
  const havePublic = existsSync(files.publicKeyFile);
  if (havePrivate && havePublic) return false;
  if (havePrivate !== havePublic) {
    throw new Error(
      `only one half of the token key pair exists (${havePrivate ? files.privateKeyFile : files.publicKeyFile}); restore or remove it`,
    );
  }
  const { privateKey, publicKey } = generateKeyPairSync("ed25519", {
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  for (const [path, pem, mode] of [
    [files.privateKeyFile, privateKey, 0o600],
    [files.publicKeyFile, publicKey, 0o644],
  ] as const) {
    mkdirSync(join(path, ".."), { recursive: true });
    writeFileSync(`${path}.tmp`, pem, { mode });
    renameSync(`${path}.tmp`, path);
  }
  return true;
}

/** Reads a PEM file, with an error that says which key is missing. */
export function readPem(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new Error(`cannot read the ${what} at ${path}: ${(error as Error).message}`);
  }
}
