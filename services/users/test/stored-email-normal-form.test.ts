// Emails stored under the older rule (trimmed and lower-cased only) are
// brought to the current normal form (NFKC, case-folded) when users starts,
// so that their owners can still sign in; one whose normal form another
// account already has is left as it was.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterAll, expect, it } from "vitest";
import { spawnService, type ServiceProcess } from "@shopmesh/cli";
import { createClient, createTransport } from "@shopmesh/sdk";
import { UsersService } from "@shopmesh/sdk/users/v1";

const entry = fileURLToPath(new URL("../src/main.ts", import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), "shopmesh-users-emails-"));
const env = {
  TLS: "off",
  DATA_DIR: dataDir,
  PORT: "0",
  ADMIN_PORT: "0",
  DEVELOPMENT_MODE: "on",
  PASSWORD_HASH_COST: "1024",
};
let users: ServiceProcess | undefined;
afterAll(async () => {
  await users?.stop("SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
});

async function withUsers<T>(work: (client: ReturnType<typeof createClient<typeof UsersService>>) => Promise<T>) {
  users = await spawnService({ entry, env });
  const transport = createTransport({ target: users.address });
  try {
    return await work(createClient(UsersService, transport));
  } finally {
    transport.close();
    await users.stop("SIGTERM");
    users = undefined;
  }
}

it("brings stored emails to the normal form at start, leaving one that would clash", async () => {
  await withUsers(async (client) => {
    for (const name of ["old", "taken", "clash"])
      await client.signUp({ email: `${name}@example.com`, password: "password1", displayName: name });
  });
  // As the older rule stored them: lower case, but fullwidth letters kept.
  const sqlite = new Database(join(dataDir, "users.sqlite"));
  const fullwidth = (text: string) => text.replace(/[a-z]/g, (c) => String.fromCodePoint(c.codePointAt(0)! + 0xfee0));
  sqlite
    .prepare("UPDATE users SET email = ? WHERE email = ?")
    .run(`${fullwidth("old")}@example.com`, "old@example.com");
  sqlite
    .prepare("UPDATE users SET email = ? WHERE email = ?")
    .run(`${fullwidth("taken")}@example.com`, "clash@example.com");
  sqlite.close();

  await withUsers(async (client) => {
    const { user } = await client.signIn({ email: "OLD@example.com", password: "password1" });
    expect(user!.email).toBe("old@example.com");
    const { user: taken } = await client.signIn({ email: "taken@example.com", password: "password1" });
    expect(taken!.displayName).toBe("taken");
  });
  const after = new Database(join(dataDir, "users.sqlite"), { readonly: true });
  const emails = (after.prepare("SELECT email FROM users ORDER BY email").all() as { email: string }[]).map(
    (row) => row.email,
  );
  after.close();
  expect(emails).toEqual(["old@example.com", "taken@example.com", `${fullwidth("taken")}@example.com`]);
});
