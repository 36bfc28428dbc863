import type Database from "better-sqlite3";

/** A prepared SELECT whose rows keep their int64 columns exact. */
export interface ExactRows<Params extends unknown[], Row> {
  all(...params: Params): Row[];
  get(...params: Params): Row | undefined;
}

/**
 * Prepares a SELECT that reads `int64Columns` as bigints, exactly, and every
 * other integer column as a number. better-sqlite3's safe integers make a
 * statement return every integer as a bigint; the columns that are counts or
 * times go back to numbers here, so one row has one shape for its whole life.
 */
export function prepareExactRows<Params extends unknown[], Row extends object>(
  sqlite: Database.Database,
  sql: string,
  int64Columns: readonly (keyof Row & string)[],
): ExactRows<Params, Row> {
  const statement = sqlite.prepare<Params, Record<string, unknown>>(sql).safeIntegers(true);
  const exact = new Set<string>(int64Columns);
  const toRow = (raw: Record<string, unknown>): Row => {
    for (const key in raw) {
      const value = raw[key];
      if (typeof value === "bigint" && !exact.has(key)) raw[key] = Number(value);
    }
    return raw as Row;
  };
  return {
    all: (...params) => statement.all(...params).map(toRow),
    get: (...params) => {
      const raw = statement.get(...params);
      return raw === undefined ? undefined : toRow(raw);
    },
  };
}
