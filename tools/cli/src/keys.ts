import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import { envReader } from "@shopmesh/chassis";
import { createClient, createTransport } from "@shopmesh/sdk";
import { UsersService, type SigningKey } from "@shopmesh/sdk/users/v1";
import { parseCommandLine, targetOption, usageFailure, UsageError } from "./command-line.js";

export const keysUsage = `usage: shopmesh keys rotate | list [--target HOST:PORT] [--cacert FILE]

  rotate            make a new token signing key; users signs with it from now on and
                    keeps the previous key published until the tokens it signed expire
  list              show the published signing keys
  --target H:P      the users service (default: npm start's, 127.0.0.1:<SHOPMESH_PORT_BASE>)
  --cacert FILE     the mesh's CA certificate (default: npm start's, <DATA_DIR>/tls/ca.pem);
                    with TLS=off, plaintext

rotate needs an admin's access token in SHOPMESH_TOKEN (an environment variable,
so that it shows in no process list).`;

function describe(key: SigningKey, currentKeyId: string): string {
  const created = key.createTime ? timestampDate(key.createTime).toISOString() : "?";
  const state =
    key.keyId === currentKeyId
      ? "signs new tokens"
      : `published until ${key.retireTime ? timestampDate(key.retireTime).toISOString() : "?"}`;
  return `${key.keyId}  made ${created}  ${state}`;
}

/** npm start's CA certificate: <DATA_DIR>/tls/ca.pem, DATA_DIR being the checkout's data/ unless set. */
function defaultCaFile(): string {
  const root = fileURLToPath(new URL("../../..", import.meta.url));
  return join(resolve(envReader().string("DATA_DIR", join(root, "data"))), "tls", "ca.pem");
}

/** The CA certificate's bytes, or a usage error naming the file (a folder given for it, say). */
function readCa(file: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (error) {
    throw new UsageError(
      `cannot read the CA certificate ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  try {
    new X509Certificate(pem);
  } catch {
    throw new UsageError(`${file} holds no certificate in PEM (the mesh's is data/tls/ca.pem)`);
  }
  return pem;
}

/** `shopmesh keys`: rotates or lists the users service's token signing keys. Returns the exit code. */
export async function keys(args: string[]): Promise<number> {
  let action: "rotate" | "list";
  let target: string;
  let caFile: string | undefined;
  let ca: Buffer | undefined;
  try {
    const { values, positionals } = parseCommandLine({
      args,
      allowPositionals: true,
      options: {
        target: { type: "string" },
        cacert: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
    if (values.help) {
      process.stdout.write(`${keysUsage}\n`);
      return 0;
    }
    const [first, ...rest] = positionals;
    if (first !== "rotate" && first !== "list")
      throw new UsageError(first ? `unknown action '${first}'` : "rotate or list?");
    if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
    action = first;
    target =
      values.target !== undefined
        ? targetOption("target", values.target)
        : `127.0.0.1:${envReader().int("SHOPMESH_PORT_BASE", 50051, { min: 1024, max: 65532 })}`;
    caFile = envReader().bool("TLS", true) ? (values.cacert ?? defaultCaFile()) : undefined;
    if (caFile !== undefined && !existsSync(caFile))
      throw new UsageError(`no CA certificate at ${caFile}: pass --cacert, or TLS=off for a mesh without TLS`);
    ca = caFile === undefined ? undefined : readCa(caFile);
  } catch (error) {
    return usageFailure("keys", error);
  }
  const token = envReader().optionalString("SHOPMESH_TOKEN");
  if (action === "rotate" && token === undefined) {
    process.stderr.write("shopmesh keys: rotate needs an admin's access token in SHOPMESH_TOKEN\n");
    return 2;
  }
  const transport = createTransport({
    target,
    ...(token === undefined ? {} : { token }),
    ...(ca === undefined ? {} : { tls: { ca, service: "users" } }),
  });
  try {
    const users = createClient(UsersService, transport);
    if (action === "rotate") {
      const { currentKey, keys } = await users.rotateSigningKey({}, { timeoutMs: 10_000 });
      process.stdout.write(`new signing key ${currentKey!.keyId}\n`);
      for (const key of keys) process.stdout.write(`  ${describe(key, currentKey!.keyId)}\n`);
    } else {
      const { keys, currentKeyId } = await users.getSigningKeys({}, { timeoutMs: 10_000 });
      for (const key of keys) process.stdout.write(`${describe(key, currentKeyId)}\n`);
    }
    return 0;
  } catch (error) {
    const failure = ConnectError.from(error);
    process.stderr.write(`shopmesh keys ${action}: ${failure.message}\n`);
    return 1;
  } finally {
    transport.close();
  }
}
