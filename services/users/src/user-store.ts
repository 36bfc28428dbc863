import { asc, eq, inArray, sql } from "drizzle-orm";
import type { BetterSQLite3Database } from "drizzle-orm/better-sqlite3";
import { EventLog, newId, type EventStreamOptions, type OpenDatabase } from "@shopmesh/chassis";
import { UserEventSchema } from "@shopmesh/sdk/users/v1";
import type * as schema from "./db/schema.js";
import { users, type UserRow } from "./db/schema.js";
import { toUser } from "./user-messages.js";

export type UsersDb = BetterSQLite3Database<typeof schema>;

/** A new account, validated and normalised by the caller. */
export interface NewUser {
  email: string;
  displayName: string;
  passwordHash: string;
  role: UserRow["role"];
}

/**
 * The users service's data access; the only code that touches users.sqlite.
 * A new account appends UserRegistered to the outbox in the same transaction.
 */
export class UserStore {
  readonly events: EventLog<typeof UserEventSchema>;
  // The per-call lookups are prepared once instead of rebuilt on every call.
  readonly #byId;
  readonly #byEmail;

  private readonly db: UsersDb;

  constructor(database: OpenDatabase<typeof schema>, streamOptions: EventStreamOptions = {}) {
    const { db, sqlite } = database;
    this.db = db;
    this.events = new EventLog(sqlite, UserEventSchema, streamOptions);
    this.#byId = db
      .select()
      .from(users)
      .where(eq(users.id, sql.placeholder("id")))
      .prepare();
    this.#byEmail = db
      .select()
      .from(users)
      .where(eq(users.email, sql.placeholder("email")))
      .prepare();
  }

  /** Inserts an account; returns undefined when the email is taken. */
  create(user: NewUser): UserRow | undefined {
    const row: UserRow = { id: newId(), createdAt: Date.now(), ...user };
    return this.db.transaction((tx) => {
      const inserted = tx.insert(users).values(row).onConflictDoNothing({ target: users.email }).returning().get();
      if (inserted)
        this.events.append({ kind: { case: "userRegistered", value: { user: toUser(inserted) } } }, inserted.createdAt);
      return inserted;
    });
  }

  /**
   * Records a UserRegistered event for every account when the outbox is
   * empty but the table is not: a database from before the outbox existed
   * then still gives readers every account. Returns how many it wrote.
   */
  backfillEvents(): number {
    return this.events.backfill(() =>
      this.db
        .select()
        .from(users)
        .orderBy(asc(users.id))
        .all()
        .map((row) => ({
          event: { kind: { case: "userRegistered", value: { user: toUser(row) } } },
          occurredAt: row.createdAt,
        })),
    );
  }

  /**
   * Stores every email in the form `normalise` gives now (emails stored
   * under an older rule, e.g. lower case only, would otherwise never be
   * found). An email that cannot be normalised (`normalise` returns
   * undefined) or whose normal form another account already has is left as
   * it is; their ids are returned for the log.
   */
  renormaliseEmails(normalise: (email: string) => string | undefined): { changed: number; left: string[] } {
    const left: string[] = [];
    let changed = 0;
    this.db.transaction((tx) => {
      for (const row of tx.select({ id: users.id, email: users.email }).from(users).all()) {
        const normal = normalise(row.email);
        if (normal === row.email) continue;
        if (normal === undefined || this.byEmail(normal)) {
          left.push(row.id);
          continue;
        }
        tx.update(users).set({ email: normal }).where(eq(users.id, row.id)).run();
        changed += 1;
      }
    });
    return { changed, left };
  }

  byEmail(email: string): UserRow | undefined {
    return this.#byEmail.get({ email });
  }

  byId(id: string): UserRow | undefined {
    return this.#byId.get({ id });
  }

  byIds(ids: readonly string[]): UserRow[] {
    if (ids.length === 0) return [];
    return this.db
      .select()
      .from(users)
      .where(inArray(users.id, [...ids]))
      .all();
  }
}
