import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Role, type UserSchema } from "@shopmesh/sdk/users/v1";
import type { PublicUserRow } from "./db/schema.js";

/** A stored account as the contract's User (never with the password hash), for answers and events alike. */
export function toUser(row: PublicUserRow): MessageInitShape<typeof UserSchema> {
  return {
    id: row.id,
    email: row.email,
    displayName: row.displayName,
    role: row.role === "admin" ? Role.ADMIN : Role.CUSTOMER,
    createTime: timestampFromMs(row.createdAt),
  };
}
