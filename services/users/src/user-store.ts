import { asc, eq, sql } from "drizzle-orm";
import type { BetterSQLite3Database } from "drizzle-orm/better-sqlite3";
import { EventLog, newId, RowCache, type EventStreamOptions, type OpenDatabase } from "@shopmesh/chassis";
import { UserEventSchema } from "@shopmesh/sdk/users/v1";
import type * as schema from "./db/schema.js";
import { users, type PublicUserRow, type UserRow } from "./db/schema.js";
import { toUser } from "./user-messages.js";

export type UsersDb = BetterSQLite3Database<typeof schema>;

/** A new account, validated and normalised by the caller. */
export interface NewUser {
  email: string;
  displayName: string;
  passwordHash: string;
  role: UserRow["role"];
}

/** Options for {@link UserStore}. */
export interface UserStoreOptions {
  /** Event stream limits (batch size, heartbeat) of the outbox's readers. */
  streams?: EventStreamOptions;
  /** Most accounts kept in memory for reads by id; 0 turns the cache off. Default 10,000. */
  cacheEntries?: number;
}

/**
 * The users service's data access; the only code that touches users.sqlite.
 * A new account appends UserRegistered to the outbox in the same transaction.
 *
 * Reads by id (GetUser, BatchGetUsers, which every user-orders view asks)
 * go through a {@link RowCache}, as products' and orders' do. It cannot go
 * stale: this process is the only writer of its database, a new account is
 * read on its first read by id like any other, and an email brought to its
 * normal form is dropped before it is written. The cache holds accounts
 * without their password hashes; only sign-in reads those, by email, from
 * the database.
 */
export class UserStore {
  readonly events: EventLog<typeof UserEventSchema>;
  // Reads by id are prepared on the better-sqlite3 handle, naming only the
  // public columns with the schema's field names, so that a row needs no
  // mapping; sign-in's read by email is prepared once through drizzle.
  readonly #byId;
  /** The accounts whose ids are in one JSON array. */
  readonly #byIds;
  readonly #byEmail;
  readonly #cached: RowCache<PublicUserRow>;

  private readonly db: UsersDb;

  constructor(database: OpenDatabase<typeof schema>, options: UserStoreOptions = {}) {
    const { db, sqlite } = database;
    this.db = db;
    this.events = new EventLog(sqlite, UserEventSchema, options.streams);
    const selectPublic = "SELECT id, email, display_name AS displayName, role, created_at AS createdAt FROM users";
    this.#byId = sqlite.prepare<[id: string], PublicUserRow>(`${selectPublic} WHERE id = ?`);
    this.#byIds = sqlite.prepare<[ids: string], PublicUserRow>(
      `${selectPublic} WHERE id IN (SELECT value FROM json_each(?))`,
    );
    this.#cached = new RowCache({
      entries: options.cacheEntries ?? 10_000,
      idOf: (row) => row.id,
      readMany: (ids) => this.#byIds.all(JSON.stringify(ids)),
      readOne: (id) => this.#byId.get(id),
    });
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
        this.#cached.delete(row.id);
        tx.update(users).set({ email: normal }).where(eq(users.id, row.id)).run();
        changed += 1;
      }
    });
    return { changed, left };
  }

  byEmail(email: string): UserRow | undefined {
    return this.#byEmail.get({ email });
  }

  byId(id: string): PublicUserRow | undefined {
    return this.#cached.get(id);
  }

  /** The accounts among `ids` that exist, by id. */
  byIds(ids: readonly string[]): Map<string, PublicUserRow> {
    return this.#cached.getMany(ids);
  }
}
