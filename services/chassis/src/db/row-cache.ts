import { LRUCache } from "lru-cache";

/** Options for {@link RowCache}. */
export interface RowCacheOptions<Row> {
  /** Most rows kept in memory; 0 keeps none, and every read goes to `readMany`. */
  entries: number;
  /** The id a row is kept under. */
  idOf(row: Row): string;
  /** Reads the rows with these ids (distinct, at least one) that exist, in any order. */
  readMany(ids: readonly string[]): Iterable<Row>;
  /** Reads one row by id; when absent, `readMany` is called with that one id. */
  readOne?(id: string): Row | undefined;
}

/**
 * Rows read by id through an in-memory LRU cache: a read takes what the
 * cache holds and reads only the rest, in one statement, and keeps what it
 * read. It is right only for a store that is its database's only writer,
 * and that calls {@link set} or {@link delete} once each write of a cached
 * row has committed. The rows it hands out are shared between readers, so
 * it freezes each row it reads or is given, with the plain objects and
 * arrays inside it (an order's lines): code that would change a row another
 * call is reading fails with a TypeError instead. It freezes them with the
 * cache off too, so that such code fails the same way in either setting.
 */
export class RowCache<Row extends object> {
  readonly #cache: LRUCache<string, Row> | undefined;
  readonly #idOf: (row: Row) => string;
  readonly #readMany: (ids: readonly string[]) => Iterable<Row>;
  readonly #readOne: (id: string) => Row | undefined;

  constructor(options: RowCacheOptions<Row>) {
    if (!Number.isSafeInteger(options.entries) || options.entries < 0) {
      throw new RangeError(`RowCache entries must be a whole number of 0 or more, not ${options.entries}`);
    }
    this.#cache = options.entries > 0 ? new LRUCache({ max: options.entries }) : undefined;
    this.#idOf = options.idOf;
    this.#readMany = options.readMany;
    this.#readOne =
      options.readOne ??
      ((id) => {
        for (const row of options.readMany([id])) return row;
        return undefined;
      });
  }

  /** The row with this id, if it exists. */
  get(id: string): Row | undefined {
    const cached = this.#cache?.get(id);
    if (cached !== undefined) return cached;
    const row = this.#readOne(id);
    if (row === undefined) return undefined;
    freezeRow(row);
    this.#cache?.set(id, row);
    return row;
  }

  /** The rows among `ids` that exist, by id (an id asked twice is read once). */
  getMany(ids: readonly string[]): Map<string, Row> {
    const found = new Map<string, Row>();
    const missing = new Set<string>();
    for (const id of ids) {
      if (found.has(id) || missing.has(id)) continue;
      const cached = this.#cache?.get(id);
      if (cached !== undefined) found.set(id, cached);
      else missing.add(id);
    }
    if (missing.size > 0) {
      for (const row of this.#readMany([...missing])) {
        freezeRow(row);
        const id = this.#idOf(row);
        found.set(id, row);
        this.#cache?.set(id, row);
      }
    }
    return found;
  }

  /** The rows among `ids` that exist, in the order of `ids`. */
  getInOrder(ids: readonly string[]): Row[] {
    const found = this.getMany(ids);
    const rows: Row[] = [];
    for (const id of ids) {
      const row = found.get(id);
      if (row !== undefined) rows.push(row);
    }
    return rows;
  }

  /** Keeps a row just written (after its transaction committed); returns it, frozen. */
  set(row: Row): Row {
    freezeRow(row);
    this.#cache?.set(this.#idOf(row), row);
    return row;
  }

  /** Drops a row about to be written, so that the next read takes it from the database. */
  delete(id: string): void {
    this.#cache?.delete(id);
  }
}

/**
 * Freezes a row and the plain objects and arrays it holds, at any depth.
 * Other objects (a Uint8Array, a Date) are left as they are: a typed array
 * with elements cannot be frozen.
 */
function freezeRow(value: object): void {
  if (Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const inner of Object.values(value)) {
    if (typeof inner === "object" && inner !== null && isPlain(inner)) freezeRow(inner);
  }
}

function isPlain(value: object): boolean {
  if (Array.isArray(value)) return true;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}
