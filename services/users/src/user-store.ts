import { eq, inArray, sql } from "drizzle-orm";
import type { BetterSQLite3Database } from "drizzle-orm/better-sqlite3";
import { newId } from "@shopmesh/chassis";
import * as schema from "./db/schema.js";
import { users, type UserRow } from "./db/schema.js";

export type UsersDb = BetterSQLite3Database<typeof schema>;

/** A new account, validated and normalised by the caller. */
export interface NewUser {
  email: string;
  displayName: string;
  passwordHash: string;
  role: UserRow["role"];
}

/** The users service's data access; the only code that touches users.sqlite. */
export class UserStore {
  // The per-call lookups are prepared once instead of rebuilt on every call.
  readonly #byId;
  readonly #byEmail;

  constructor(private readonly db: UsersDb) {
    this.#byId = db.select().from(users).where(eq(users.id, sql.placeholder("id"))).prepare();
    this.#byEmail = db.select().from(users).where(eq(users.email, sql.placeholder("email"))).prepare();
  }

  /** Inserts an account; returns undefined when the email is taken. */
  create(user: NewUser): UserRow | undefined {
    const row: UserRow = { id: newId(), createdAt: Date.now(), ...user };
    const inserted = this.db.insert(users).values(row).onConflictDoNothing({ target: users.email }).returning().all();
    return inserted[0];
  }

  byEmail(email: string): UserRow | undefined {
    return this.#byEmail.get({ email });
  }

  byId(id: string): UserRow | undefined {
    return this.#byId.get({ id });
  }

  byIds(ids: readonly string[]): UserRow[] {
    if (ids.length === 0) return [];
    return this.db.select().from(users).where(inArray(users.id, [...ids])).all();
  }
}
