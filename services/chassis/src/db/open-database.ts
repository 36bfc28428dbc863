import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { drizzle, type BetterSQLite3Database } from "drizzle-orm/better-sqlite3";
import { migrate } from "drizzle-orm/better-sqlite3/migrator";

/** Options for {@link openDatabase}. */
export interface OpenDatabaseOptions<TSchema extends Record<string, unknown>> {
  /** File path, or ":memory:" for a private in-memory database. */
  path: string;
  /** Folder of the drizzle-kit migrations to apply. */
  migrationsFolder: string;
  /** The drizzle schema, for typed relational queries. */
  schema: TSchema;
  /** How long a writer waits for a lock before SQLITE_BUSY (default 5 s). */
  busyTimeoutMs?: number;
  /**
   * better-sqlite3's addon to load instead of the installed one (default:
   * SQLITE_NATIVE_BINDING from the environment): one built for another
   * Node.js, so that one checkout runs services on two Node.js lines.
   */
  nativeBinding?: string;
}

/** An open database: drizzle on top, the better-sqlite3 handle below. */
export interface OpenDatabase<TSchema extends Record<string, unknown>> {
  db: BetterSQLite3Database<TSchema>;
  sqlite: Database.Database;
  close(): void;
}

/**
 * Opens a service's own SQLite database and applies its migrations. WAL mode
 * lets readers run beside the writer; `synchronous=FULL` makes every
 * acknowledged commit survive a crash or power cut, which a service that
 * answers "order placed" owes its callers; foreign keys are enforced.
 */
export function openDatabase<TSchema extends Record<string, unknown>>(
  options: OpenDatabaseOptions<TSchema>,
): OpenDatabase<TSchema> {
  const nativeBinding = options.nativeBinding ?? (process.env.SQLITE_NATIVE_BINDING || undefined);
  let sqlite: Database.Database;
  try {
    if (options.path !== ":memory:") mkdirSync(dirname(options.path), { recursive: true });
    sqlite = new Database(options.path, nativeBinding === undefined ? {} : { nativeBinding });
  } catch (error) {
    // SQLite's own message ("unable to open database file") names no file.
    throw new Error(
      `cannot open the database ${options.path}: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
      },
    );
  }
  try {
    sqlite.pragma("journal_mode = WAL");
    sqlite.pragma("synchronous = FULL");
    sqlite.pragma("foreign_keys = ON");
    sqlite.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
    const db = drizzle(sqlite, { schema: options.schema });
    migrate(db, { migrationsFolder: options.migrationsFolder });
    return { db, sqlite, close: () => sqlite.close() };
  } catch (error) {
    sqlite.close();
    throw error;
  }
}
