// users makes no signing key of its own accord outside development mode (a
// fresh data directory without a key is a start-up error naming the variable)
// and rotates its key on a schedule when told to.
import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { spawnService } from "@shopmesh/cli";
import { createClient, createTransport } from "@shopmesh/sdk";
import { UsersService } from "@shopmesh/sdk/users/v1";

const entry = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "shopmesh-users-keys-"));
  dirs.push(dir);
  return dir;
}

function runUsers(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ["--import", "tsx", entry],
      { env: { ...process.env, TLS: "off", PORT: "0", ADMIN_PORT: "0", ...env }, timeout: 20_000 },
      (_error, _stdout, stderr) => resolve({ code: child.exitCode, stderr }),
    );
  });
}

describe("the first signing key", () => {
  it("is a start-up error naming AUTH_PRIVATE_KEY_FILE when none is given outside development mode", async () => {
    const dir = dataDir();
    const { code, stderr } = await runUsers({ DATA_DIR: dir });
    expect(code).toBe(2);
    expect(stderr).toContain("AUTH_PRIVATE_KEY_FILE");
    expect(stderr).toContain("DEVELOPMENT_MODE=on");
    expect(readdirSync(join(dir, "auth", "signing-keys"))).toEqual([]);
  });

  it("is made in development mode, readable by its owner only, and published", async () => {
    const dir = dataDir();
    const users = await spawnService({
      entry,
      env: { TLS: "off", DATA_DIR: dir, PORT: "0", ADMIN_PORT: "0", DEVELOPMENT_MODE: "on" },
    });
    const transport = createTransport({ target: users.address });
    try {
      const { keys, currentKeyId, jwksJson } = await createClient(UsersService, transport).getSigningKeys({});
      expect(keys.map((key) => key.keyId)).toEqual([currentKeyId]);
      expect(keys[0]!.publicKey).toHaveLength(32);
      expect(JSON.parse(jwksJson)).toEqual({
        keys: [
          {
            kty: "OKP",
            crv: "Ed25519",
            x: Buffer.from(keys[0]!.publicKey).toString("base64url"),
            kid: currentKeyId,
            alg: "EdDSA",
            use: "sig",
          },
        ],
      });
      const file = join(dir, "auth", "signing-keys", `${currentKeyId}.json`);
      expect(statSync(file).mode & 0o777).toBe(0o600);
    } finally {
      transport.close();
      await users.stop("SIGKILL");
    }
  });

  it("is imported from AUTH_PRIVATE_KEY_FILE", async () => {
    const dir = dataDir();
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const keyFile = join(dir, "given.pem");
    writeFileSync(keyFile, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
    const users = await spawnService({
      entry,
      env: { TLS: "off", DATA_DIR: dir, PORT: "0", ADMIN_PORT: "0", AUTH_PRIVATE_KEY_FILE: keyFile },
    });
    const transport = createTransport({ target: users.address });
    try {
      const { keys } = await createClient(UsersService, transport).getSigningKeys({});
      expect(Buffer.from(keys[0]!.publicKey).toString("base64url")).toBe(publicKey.export({ format: "jwk" }).x);
    } finally {
      transport.close();
      await users.stop("SIGKILL");
    }
  });
});

describe("KEY_ROTATION_INTERVAL", () => {
  it("rotates the signing key on schedule and keeps the previous one published", async () => {
    const users = await spawnService({
      entry,
      env: {
        TLS: "off",
        DATA_DIR: dataDir(),
        PORT: "0",
        ADMIN_PORT: "0",
        DEVELOPMENT_MODE: "on",
        KEY_ROTATION_INTERVAL: "1s",
      },
    });
    const transport = createTransport({ target: users.address });
    try {
      const client = createClient(UsersService, transport);
      const first = (await client.getSigningKeys({})).currentKeyId;
      let rotated: Awaited<ReturnType<typeof client.getSigningKeys>> | undefined;
      for (let i = 0; i < 100 && !rotated; i++) {
        const answer = await client.getSigningKeys({});
        if (answer.currentKeyId !== first) rotated = answer;
        else await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(rotated).toBeDefined();
      const previous = rotated!.keys.find((key) => key.keyId === first);
      expect(previous?.retireTime).toBeDefined();
      expect(users.logs.some((entry) => entry.msg === "rotated the token signing key on schedule")).toBe(true);
    } finally {
      transport.close();
      await users.stop("SIGKILL");
    }
  });
});
