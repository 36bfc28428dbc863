import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  checkId,
  checkIds,
  checkText,
  invalidArgument,
  peerAddress,
  requireAdmin,
  requireSelfOrAdmin,
  streamEventsHandler,
  type TokenSigner,
} from "@shopmesh/chassis";
import type { UsersService } from "@shopmesh/sdk/users/v1";
import type { PublicUserRow } from "./db/schema.js";
import { toUser } from "./user-messages.js";
import { decoyHash, hashPassword, verifyPassword } from "./passwords.js";
import { toJwks, toSigningKey } from "./signing-key-messages.js";
import type { SigningKeyStore } from "./signing-key-store.js";
import { SignInThrottle } from "./sign-in-throttle.js";
import type { UserStore } from "./user-store.js";

/** Largest number of ids BatchGetUsers answers at once. */
export const maxBatchUsers = 100;

const emailPattern = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Dependencies of the users handlers. */
export interface UsersServiceDeps {
  store: UserStore;
  signer: TokenSigner;
  /** The signing keys, which GetSigningKeys publishes and RotateSigningKey rotates. */
  keys: SigningKeyStore;
  /** Called after every rotation (for logs). */
  onRotate?: (keyId: string, previousKeyId: string) => void;
  /** Emails (normalised) that sign up as admins; everyone else is a customer. */
  adminEmails: ReadonlySet<string>;
  /** scrypt cost N for new password hashes (a power of two). */
  passwordCost?: number;
  /** Slows down password guessing (default: the default limits). */
  throttle?: SignInThrottle;
}

/**
 * Unicode case folding as near as JavaScript gets: upper case, then lower,
 * maps "ß" to "ss" and a final sigma to sigma, as full case folding does,
 * where lower case alone keeps them apart.
 */
function foldCase(text: string): string {
  return text.toUpperCase().toLowerCase();
}

/**
 * Trims, NFKC-normalises and case-folds an email, and checks its shape, so
 * that look-alikes (fullwidth letters, ligatures, other cases) are one
 * address. Control and invisible formatting characters (zero-width spaces,
 * bidi overrides) are refused rather than removed.
 */
export function normaliseEmail(field: string, value: string): string {
  const email = foldCase(checkText(field, value, { max: 254 }).normalize("NFKC")).normalize("NFKC");
  if ([...email].length > 254) throw invalidArgument(field, "must be at most 254 characters");
  if (!emailPattern.test(email)) throw invalidArgument(field, "is not an email address");
  return email;
}

/** The UsersService handlers: validation, authorisation and mapping; data access is in UserStore. */
export function createUsersService(deps: UsersServiceDeps): ServiceImpl<typeof UsersService> {
  const throttle = deps.throttle ?? new SignInThrottle();
  const session = async (row: PublicUserRow) => {
    const { token, expiresAt } = await deps.signer.sign({ userId: row.id, role: row.role });
    return { accessToken: token, expireTime: timestampFromMs(expiresAt.getTime()) };
  };

  return {
    async signUp(request) {
      const email = normaliseEmail("email", request.email);
      const password = request.password;
      if (password.trim() === "") throw invalidArgument("password", "must not be only white space");
      if ([...password].length < 8) throw invalidArgument("password", "must be at least 8 characters");
      if ([...password].length > 128) throw invalidArgument("password", "must be at most 128 characters");
      const displayName = checkText("display_name", request.displayName, { max: 100 });
      const row = deps.store.create({
        email,
        displayName,
        passwordHash: await hashPassword(password, deps.passwordCost),
        role: deps.adminEmails.has(email) ? "admin" : "customer",
      });
      if (!row) throw new ConnectError("an account with this email already exists", Code.AlreadyExists);
      return { user: toUser(row), session: await session(row) };
    },

    async signIn(request, context) {
      const email = normaliseEmail("email", request.email);
      if (request.password === "") throw invalidArgument("password", "is required");
      const address = peerAddress(context) ?? "unknown";
      throttle.check(email, address);
      const row = deps.store.byEmail(email);
      // Unknown email and wrong password take the same time and get the same answer.
      const ok = await verifyPassword(request.password, row?.passwordHash ?? decoyHash);
      if (!row || !ok) {
        throttle.failed(email, address);
        throw new ConnectError("email or password is wrong", Code.Unauthenticated);
      }
      throttle.succeeded(email, address);
      return { user: toUser(row), session: await session(row) };
    },

    getUser(request, context) {
      const userId = checkId("user_id", request.userId);
      requireSelfOrAdmin(context, userId);
      const row = deps.store.byId(userId);
      if (!row) throw new ConnectError(`user ${userId} not found`, Code.NotFound);
      return { user: toUser(row) };
    },

    batchGetUsers(request, context) {
      requireAdmin(context);
      const ids = checkIds("user_ids", request.userIds, { max: maxBatchUsers });
      const found = deps.store.byIds(ids);
      return {
        users: ids.flatMap((id) => (found.has(id) ? [toUser(found.get(id)!)] : [])),
        missingUserIds: ids.filter((id) => !found.has(id)),
      };
    },

    streamEvents: streamEventsHandler(deps.store.events),

    getSigningKeys() {
      deps.keys.prune();
      const keys = deps.keys.published();
      return { keys: keys.map(toSigningKey), currentKeyId: deps.keys.currentKeyId, jwksJson: toJwks(keys) };
    },

    rotateSigningKey(_request, context) {
      requireAdmin(context);
      const previousKeyId = deps.keys.currentKeyId;
      const current = deps.keys.rotate();
      deps.onRotate?.(current.keyId, previousKeyId);
      return { currentKey: toSigningKey(current), keys: deps.keys.published().map(toSigningKey) };
    },
  };
}
