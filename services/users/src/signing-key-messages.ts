import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { tokenAlgorithm } from "@shopmesh/chassis";
import type { SigningKeySchema } from "@shopmesh/sdk/users/v1";
import type { SigningKeyInfo } from "./signing-key-store.js";

/** A published key as the contract's SigningKey. */
export function toSigningKey(key: SigningKeyInfo): MessageInitShape<typeof SigningKeySchema> {
  return {
    keyId: key.keyId,
    algorithm: tokenAlgorithm,
    curve: "Ed25519",
    publicKey: key.publicKey,
    createTime: timestampFromMs(key.createdAt),
    ...(key.retiresAt === undefined ? {} : { retireTime: timestampFromMs(key.retiresAt) }),
  };
}

/** The published keys as a JSON Web Key Set (RFC 7517, RFC 8037 for Ed25519). */
export function toJwks(keys: readonly SigningKeyInfo[]): string {
  return JSON.stringify({
    keys: keys.map((key) => ({
      kty: "OKP",
      crv: "Ed25519",
      x: Buffer.from(key.publicKey).toString("base64url"),
      kid: key.keyId,
      alg: tokenAlgorithm,
      use: "sig",
    })),
  });
}
