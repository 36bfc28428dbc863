import { generateKeyPairSync } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { createTokenSigner, createTokenVerifier } from "@shopmesh/chassis";

function keyPair() {
  return generateKeyPairSync("ed25519", {
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
}

async function rejection(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the token was accepted");
}

describe("access tokens", () => {
  it("verify with the public key and carry the user and role", async () => {
    const keys = keyPair();
    const { token } = await (await createTokenSigner(keys.privateKey, 60)).sign({ userId: "u1", role: "admin" });
    const verifier = await createTokenVerifier(keys.publicKey);
    expect(await verifier.verify(token)).toEqual({ userId: "u1", role: "admin", token });
    // A second check of the same token answers the same (from memory).
    expect(await verifier.verify(token)).toEqual({ userId: "u1", role: "admin", token });
  });

  it("refuse a token signed with another key, every time", async () => {
    const { token } = await (await createTokenSigner(keyPair().privateKey, 60)).sign({
      userId: "u1",
      role: "customer",
    });
    const verifier = await createTokenVerifier(keyPair().publicKey);
    for (let i = 0; i < 2; i++) expect((await rejection(verifier.verify(token))).code).toBe(Code.Unauthenticated);
  });

  it("stop working when they expire, even after being verified before", async () => {
    const keys = keyPair();
    const { token } = await (await createTokenSigner(keys.privateKey, 1)).sign({ userId: "u1", role: "customer" });
    const verifier = await createTokenVerifier(keys.publicKey);
    await expect(verifier.verify(token)).resolves.toMatchObject({ userId: "u1" });
    await sleep(2100);
    const error = await rejection(verifier.verify(token));
    expect(error.code).toBe(Code.Unauthenticated);
    expect(error.rawMessage).toBe("access token expired");
  });
});
