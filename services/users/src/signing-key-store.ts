import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createTokenSigner, newId, type PublishedKey, type TokenSigner } from "@shopmesh/chassis";

/** One signing key as kept on disk: `<key id>.json`, readable by its owner only. */
interface StoredKey {
  keyId: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** When it stops being published (ms since the epoch); absent while it signs new tokens. */
  retiresAt?: number;
  /** PKCS#8 PEM. */
  privateKeyPem: string;
}

/** A published key with its life times, newest first in every list. */
export interface SigningKeyInfo extends PublishedKey {
  createdAt: number;
  retiresAt?: number;
}

/** How a store's keys are timed. */
export interface SigningKeyTimes {
  /** How long a token lives. */
  tokenTtlMs: number;
  /** How far the clocks of issuer and verifiers may differ. */
  clockSkewMs: number;
}

/**
 * The users service's token signing keys, one file each in a directory of
 * its own (mode 0700, files 0600, written under a temporary name and
 * renamed). The newest key signs; a key that was replaced stays published
 * until every token it signed has expired (the token lifetime plus the
 * clock skew after its replacement), and is deleted after that.
 */
export class SigningKeyStore {
  #keys: StoredKey[] = [];
  #signer: { keyId: string; signer: TokenSigner } | undefined;

  private constructor(
    readonly directory: string,
    private readonly times: SigningKeyTimes,
  ) {}

  /** Opens the store in `directory` (creating it); it may be empty. */
  static open(directory: string, times: SigningKeyTimes): SigningKeyStore {
    mkdirSync(directory, { recursive: true, mode: 0o700 });
    chmodSync(directory, 0o700);
    const store = new SigningKeyStore(directory, times);
    store.#keys = readdirSync(directory)
      .filter((name) => name.endsWith(".json"))
      .map((name) => JSON.parse(readFileSync(join(directory, name), "utf8")) as StoredKey)
      .sort((a, b) => b.createdAt - a.createdAt || (a.keyId < b.keyId ? 1 : -1));
    return store;
  }

  get empty(): boolean {
    return this.#keys.length === 0;
  }

  /** The id of the key that signs now. */
  get currentKeyId(): string {
    return this.#current().keyId;
  }

  /** Adds a key made elsewhere (a PKCS#8 PEM Ed25519 private key) as the first one. */
  importFirst(privateKeyPem: string, now = Date.now()): SigningKeyInfo {
    if (!this.empty) throw new Error(`${this.directory} already holds signing keys`);
    const key = createPrivateKey(privateKeyPem);
    if (key.asymmetricKeyType !== "ed25519") throw new Error("the token signing key must be an Ed25519 key");
    return this.#add(key.export({ type: "pkcs8", format: "pem" }).toString(), now);
  }

  /**
   * Makes a new key that signs from now on. The key it replaces retires
   * after the last token it signed has expired.
   */
  rotate(now = Date.now()): SigningKeyInfo {
    const previous = this.#keys[0];
    if (previous) {
      previous.retiresAt = now + this.times.tokenTtlMs + this.times.clockSkewMs;
      this.#write(previous);
    }
    const { privateKey } = generateKeyPairSync("ed25519", {
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    const added = this.#add(privateKey, now);
    this.prune(now);
    return added;
  }

  /** Deletes the keys whose retirement time has passed. */
  prune(now = Date.now()): void {
    const [current, ...older] = this.#keys;
    const retired = older.filter((key) => key.retiresAt !== undefined && key.retiresAt <= now);
    for (const key of retired) rmSync(this.#path(key.keyId), { force: true });
    this.#keys = [current!, ...older.filter((key) => !retired.includes(key))].filter(Boolean);
  }

  /** The published keys: the current one and those not yet retired, newest first. */
  published(now = Date.now()): SigningKeyInfo[] {
    return this.#keys
      .filter((key) => key.retiresAt === undefined || key.retiresAt > now)
      .map((key) => ({
        keyId: key.keyId,
        createdAt: key.createdAt,
        ...(key.retiresAt === undefined ? {} : { retiresAt: key.retiresAt }),
        publicKey: rawPublicKey(key.privateKeyPem),
      }));
  }

  /** A signer that always signs with the current key, whatever rotations happen. */
  signer(): TokenSigner {
    return {
      sign: async (claims) => {
        const current = this.#current();
        if (this.#signer?.keyId !== current.keyId) {
          this.#signer = {
            keyId: current.keyId,
            signer: await createTokenSigner(current.privateKeyPem, this.times.tokenTtlMs / 1000, current.keyId),
          };
        }
        return this.#signer.signer.sign(claims);
      },
    };
  }

  #current(): StoredKey {
    const current = this.#keys[0];
    if (!current) throw new Error(`no token signing key in ${this.directory}`);
    return current;
  }

  #add(privateKeyPem: string, now: number): SigningKeyInfo {
    const key: StoredKey = { keyId: newId(), createdAt: now, privateKeyPem };
    this.#write(key);
    this.#keys.unshift(key);
    return { keyId: key.keyId, createdAt: key.createdAt, publicKey: rawPublicKey(privateKeyPem) };
  }

  #path(keyId: string): string {
    return join(this.directory, `${keyId}.json`);
  }

  #write(key: StoredKey): void {
    const path = this.#path(key.keyId);
    writeFileSync(`${path}.tmp`, JSON.stringify(key), { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  }
}

/** The raw 32-byte Ed25519 public key of a private key (the JWK's `x`). */
function rawPublicKey(privateKeyPem: string): Uint8Array {
  const jwk = createPublicKey(privateKeyPem).export({ format: "jwk" });
  return Buffer.from(jwk.x!, "base64url");
}
