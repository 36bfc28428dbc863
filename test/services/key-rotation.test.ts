// Token signing keys rotate under real processes: users signs with a new key
// while calls run, products learns it from users' GetSigningKeys, the old key
// stays good for the tokens it signed until they expire, and products keeps
// its cached keys while users is down.
import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { createTokenSigner } from "@shopmesh/chassis";
import type { ServiceProcess } from "@shopmesh/cli";
import { failure } from "../support/failure.js";
import { adminToken, signUpCustomer, TestMesh } from "../support/mesh.js";

const bin = fileURLToPath(new URL("../../tools/cli/bin/shopmesh.mjs", import.meta.url));
const tokenTtlMs = 30_000;
const clockSkewMs = 1000;

let mesh: TestMesh;
beforeAll(async () => {
  mesh = await TestMesh.start(["users", "products"], {
    users: { TOKEN_TTL: `${tokenTtlMs}ms`, TOKEN_CLOCK_SKEW: `${clockSkewMs}ms`, PASSWORD_HASH_COST: "1024" },
  });
});
afterAll(() => mesh?.stop());

const jwtPart = <T>(token: string, part: 0 | 1) =>
  JSON.parse(Buffer.from(token.split(".")[part]!, "base64url").toString()) as T;
const kidOf = (token: string) => jwtPart<{ kid: string }>(token, 0).kid;
const fetchesLogged = (process: ServiceProcess) =>
  process.logs.filter((entry) => entry.msg === "fetched the token signing keys").length;

/** Runs `shopmesh keys rotate` against the mesh's users as an admin would. */
async function rotateWithCli(): Promise<string> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [bin, "keys", "rotate", "--target", mesh.address("users"), "--cacert", join(mesh.dataDir, "tls", "ca.pem")],
    { env: { ...process.env, SHOPMESH_TOKEN: await adminToken(mesh) }, timeout: 60_000 },
  );
  return /new signing key (\S+)/.exec(stdout)![1]!;
}

/** Polls `check` every 50 ms until it returns true or `timeoutMs` passes. */
async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

describe("signing key rotation", () => {
  it("refuses no valid token while keys rotate under running calls", async () => {
    const customer = await signUpCustomer(mesh, "rotation-load");
    const users = mesh.client("users");
    const refusals: string[] = [];
    const kidsSeen = new Map<string, number>();
    let calls = 0;
    let stop = false;
    const worker = async () => {
      // Bounded in count and time whatever happens to the rotations.
      const deadline = Date.now() + 90_000;
      for (let i = 0; i < 2000 && !stop && Date.now() < deadline; i++) {
        try {
          const { session } = await users.signIn({ email: customer.email, password: "correct horse" });
          const token = session!.accessToken;
          kidsSeen.set(kidOf(token), (kidsSeen.get(kidOf(token)) ?? 0) + 1);
          await mesh.client("products", token).listProducts({ pageSize: 1 });
          await mesh.client("users", token).getUser({ userId: customer.userId });
          calls += 1;
        } catch (error) {
          refusals.push(String(error));
        }
      }
    };
    const workers = Promise.all(Array.from({ length: 4 }, worker));
    expect(await until(async () => calls >= 20, 10_000)).toBe(true);
    const first = await rotateWithCli();
    expect(await until(async () => (kidsSeen.get(first) ?? 0) >= 20, 20_000)).toBe(true);
    const second = await rotateWithCli();
    expect(await until(async () => (kidsSeen.get(second) ?? 0) >= 20, 20_000)).toBe(true);
    stop = true;
    await workers;
    expect(refusals).toEqual([]);
    expect(kidsSeen.size).toBe(3);
    const learned = mesh.processes
      .get("products")!
      .logs.filter((entry) => entry.msg === "fetched the token signing keys")
      .flatMap((entry) => entry.learned as string[]);
    expect(learned).toEqual(expect.arrayContaining([first, second]));
  }, 120_000);

  it("accepts a token of the old key until it expires, then refuses it; the old key is retired and deleted", async () => {
    const customer = await signUpCustomer(mesh, "old-key");
    const oldKid = kidOf(customer.token);
    const rotated = await mesh.client("users", await adminToken(mesh)).rotateSigningKey({});
    expect(rotated.currentKey!.keyId).not.toBe(oldKid);
    const old = rotated.keys.find((key) => key.keyId === oldKid)!;
    const retiresAtMs = Number(old.retireTime!.seconds) * 1000 + old.retireTime!.nanos / 1e6;
    expect(retiresAtMs).toBeGreaterThanOrEqual(Date.now() + tokenTtlMs + clockSkewMs - 1000);

    const products = mesh.client("products", customer.token);
    await products.listProducts({ pageSize: 1 });
    await mesh.client("users", customer.token).getUser({ userId: customer.userId });
    const expiresAtMs = jwtPart<{ exp: number }>(customer.token, 1).exp * 1000;
    // Accepted every time until its expiry, refused after it.
    let refused: Code | undefined;
    expect(
      await until(async () => {
        try {
          await products.listProducts({ pageSize: 1 });
          expect(Date.now()).toBeLessThan(expiresAtMs + 1000);
          return false;
        } catch (error) {
          refused = (await failure(Promise.reject(error))).code;
          return true;
        }
      }, tokenTtlMs + 3000),
    ).toBe(true);
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAtMs);
    expect(refused).toBe(Code.Unauthenticated);

    const keysDir = join(mesh.dataDir, "auth", "signing-keys");
    for (const name of readdirSync(keysDir)) expect(statSync(join(keysDir, name)).mode & 0o777).toBe(0o600);
    expect(statSync(keysDir).mode & 0o777).toBe(0o700);
    expect(
      await until(
        async () => {
          const { keys } = await mesh.client("users").getSigningKeys({});
          return !keys.some((key) => key.keyId === oldKid);
        },
        retiresAtMs - Date.now() + 3000,
      ),
    ).toBe(true);
    expect(Date.now()).toBeGreaterThanOrEqual(retiresAtMs);
    expect(readdirSync(keysDir)).not.toContain(`${oldKid}.json`);
  }, 90_000);

  it("fetches the keys once, not once per call, for tokens naming an unknown key", async () => {
    const { privateKey } = generateKeyPairSync("ed25519", {
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    const forger = await createTokenSigner(privateKey, 60, "no-such-key");
    // products first learns the current key, so that the next fetch can teach it nothing.
    await mesh.client("products", (await signUpCustomer(mesh, "current-key")).token).listProducts({ pageSize: 1 });
    const products = mesh.processes.get("products")!;
    const before = fetchesLogged(products);
    const tokens = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => (await forger.sign({ userId: `u${i}`, role: "admin" })).token),
    );
    const codes = await Promise.all(
      tokens.slice(0, 10).map(async (token) => (await failure(mesh.client("products", token).listProducts({}))).code),
    );
    for (const token of tokens.slice(10))
      codes.push((await failure(mesh.client("products", token).listProducts({}))).code);
    expect(codes).toEqual(Array.from({ length: 20 }, () => Code.Unauthenticated));
    // The log line follows the fetch's answer; give it a moment to arrive.
    expect(await until(async () => fetchesLogged(products) > before, 2000)).toBe(true);
    expect(fetchesLogged(products) - before).toBe(1);
  });

  it("keeps the cached keys while users is down and answers a token of a key it never saw UNAVAILABLE", async () => {
    // A products of its own, whose refresh hold-off no earlier test has started.
    const products = await mesh.startExtra("products", {});
    const before = await signUpCustomer(mesh, "outage-before");
    await mesh.clientAt("products", products.address, before.token).listProducts({ pageSize: 1 });
    await mesh.client("users", await adminToken(mesh)).rotateSigningKey({});
    const after = await signUpCustomer(mesh, "outage-after");
    expect(kidOf(after.token)).not.toBe(kidOf(before.token));

    const restartUsers = await mesh.stopService("users");
    await mesh.clientAt("products", products.address, before.token).listProducts({ pageSize: 1 });
    const unknown = await failure(mesh.clientAt("products", products.address, after.token).listProducts({}));
    expect(unknown.code).toBe(Code.Unavailable);

    await restartUsers();
    expect(
      await until(async () => {
        try {
          await mesh.clientAt("products", products.address, after.token).listProducts({ pageSize: 1 });
          return true;
        } catch {
          return false;
        }
      }, 10_000),
    ).toBe(true);
  }, 60_000);
});
