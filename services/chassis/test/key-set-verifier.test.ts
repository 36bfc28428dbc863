import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  ConfigError,
  createKeySetVerifier,
  createTokenSigner,
  loadUnnamedKey,
  type PublishedKey,
} from "@shopmesh/chassis";

function signingKey(keyId: string) {
  const { privateKey } = generateKeyPairSync("ed25519", {
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  const x = createPublicKey(privateKey).export({ format: "jwk" }).x!;
  const published: PublishedKey = { keyId, publicKey: Buffer.from(x, "base64url") };
  return {
    published,
    sign: async (userId: string) =>
      (await createTokenSigner(privateKey, 60, keyId)).sign({ userId, role: "customer" }).then((s) => s.token),
  };
}

async function rejection(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the token was accepted");
}

/** An issuer whose published keys a test changes, counting fetches, that can be taken down. */
function issuer(keys: PublishedKey[]) {
  const state = { keys, down: false, fetches: 0 };
  return {
    state,
    fetchKeys: async () => {
      state.fetches += 1;
      await Promise.resolve();
      if (state.down) throw new ConnectError("users is down", Code.Unavailable);
      return state.keys;
    },
  };
}

describe("a key set verifier", () => {
  it("checks each token with the key its kid names and learns a rotated key with one fetch", async () => {
    const first = signingKey("k1");
    const second = signingKey("k2");
    const users = issuer([first.published]);
    const verifier = createKeySetVerifier({ fetchKeys: users.fetchKeys });
    expect((await verifier.verify(await first.sign("u1"))).userId).toBe("u1");
    expect(users.state.fetches).toBe(1);

    users.state.keys = [second.published, first.published];
    const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => second.sign(`u${i}`)));
    const principals = await Promise.all(tokens.map((token) => verifier.verify(token)));
    expect(principals.map((p) => p.userId)).toEqual(tokens.map((_, i) => `u${i}`));
    // Twenty calls with the new key at once share one fetch.
    expect(users.state.fetches).toBe(2);
    expect((await verifier.verify(await first.sign("old"))).userId).toBe("old");
  });

  it("fetches once, not once per call, for tokens naming a key nobody published", async () => {
    const known = signingKey("k1");
    const forged = signingKey("made-up");
    const users = issuer([known.published]);
    const verifier = createKeySetVerifier({ fetchKeys: users.fetchKeys });
    await verifier.refresh();
    const before = users.state.fetches;
    const concurrent = await Promise.all(
      Array.from({ length: 10 }, async () => rejection(verifier.verify(await forged.sign("x")))),
    );
    for (let i = 0; i < 10; i++) await rejection(verifier.verify(await forged.sign(`y${i}`)));
    expect(concurrent.every((error) => error.code === Code.Unauthenticated)).toBe(true);
    expect(users.state.fetches - before).toBe(1);
  });

  it("keeps working with the cached keys while the issuer is down, and answers an unknown key UNAVAILABLE", async () => {
    const first = signingKey("k1");
    const second = signingKey("k2");
    const users = issuer([first.published]);
    const verifier = createKeySetVerifier({ fetchKeys: users.fetchKeys, retryBackoffMs: 1 });
    await verifier.refresh();
    users.state.down = true;
    users.state.keys = [second.published, first.published];
    expect((await verifier.verify(await first.sign("cached"))).userId).toBe("cached");
    const unknown = await rejection(verifier.verify(await second.sign("new")));
    expect(unknown.code).toBe(Code.Unavailable);
    users.state.down = false;
    // The failed fetch is retried after a short backoff, not after the refresh interval.
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await verifier.verify(await second.sign("new"))).userId).toBe("new");
  });

  it("starts before the issuer is up: a fetch that fails at creation does not refuse tokens later", async () => {
    const key = signingKey("k1");
    const users = issuer([key.published]);
    users.state.down = true;
    const verifier = createKeySetVerifier({ fetchKeys: users.fetchKeys, retryBackoffMs: 1 });
    await verifier.refresh();
    users.state.down = false;
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await verifier.verify(await key.sign("u1"))).userId).toBe("u1");
  });

  it("refuses a token without a kid unless an unnamed key is configured", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const { token } = await (await createTokenSigner(pem, 60)).sign({ userId: "svc", role: "service" });
    const users = issuer([]);
    const without = createKeySetVerifier({ fetchKeys: users.fetchKeys });
    expect((await rejection(without.verify(token))).code).toBe(Code.Unauthenticated);
    const withKey = createKeySetVerifier({
      fetchKeys: users.fetchKeys,
      unnamedKey: await crypto.subtle.importKey(
        "spki",
        publicKey.export({ type: "spki", format: "der" }),
        { name: "Ed25519" },
        false,
        ["verify"],
      ),
    });
    expect((await withKey.verify(token)).role).toBe("service");
  });
});

describe("loadUnnamedKey", () => {
  it("reads AUTH_PUBLIC_KEY, and names it when it holds no public key", async () => {
    const { publicKey } = generateKeyPairSync("ed25519");
    const pem = publicKey.export({ format: "pem", type: "spki" }).toString();
    expect(await loadUnnamedKey({ AUTH_PUBLIC_KEY: pem, DATA_DIR: "/nonexistent" })).toBeDefined();
    const refused = await loadUnnamedKey({ AUTH_PUBLIC_KEY: "garbage", DATA_DIR: "/nonexistent" }).catch((e) => e);
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as ConfigError).message).toBe(
      'AUTH_PUBLIC_KEY="garbage" is not valid: expected an Ed25519 public key in PEM (-----BEGIN PUBLIC KEY-----)',
    );
  });
});
