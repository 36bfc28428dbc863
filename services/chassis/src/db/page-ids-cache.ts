import { LRUCache } from "lru-cache";

/** Options for {@link PageIdsCache}. */
export interface PageIdsCacheOptions {
  /** Most ids kept, over every owner's pages; 0 keeps none, and every page is read. */
  ids: number;
}

/** Pages kept of one owner: a page key can grow, so a few owners cannot fill the cache with stale keys. */
const pagesPerOwner = 32;

/**
 * The ids on the pages of one owner's list (a user's orders, newest first),
 * kept from one read of a page to the next until the owner's list changes.
 * A page of rows already cached is then read without a statement.
 *
 * It is right only for a store that is its database's only writer, and that
 * calls {@link drop} for an owner with each write to that owner's list,
 * before the write or once it has committed, with no read of that owner's
 * pages in between (better-sqlite3's synchronous transactions leave no room
 * for one). Owners are evicted least recently used first, when their pages
 * together would hold more than `ids` ids. The arrays it hands out are
 * shared between readers and frozen.
 */
export class PageIdsCache {
  readonly #owners: LRUCache<string, Map<string, readonly string[]>> | undefined;

  constructor(options: PageIdsCacheOptions) {
    if (!Number.isSafeInteger(options.ids) || options.ids < 0) {
      throw new RangeError(`PageIdsCache ids must be a whole number of 0 or more, not ${options.ids}`);
    }
    this.#owners = options.ids > 0 ? new LRUCache({ maxSize: options.ids }) : undefined;
  }

  /**
   * The ids on `owner`'s page of at most `limit` ids that follow `after`
   * (from the start of the list when undefined), read with `read` when they
   * are not kept.
   */
  get(owner: string, limit: number, after: string | undefined, read: () => string[]): readonly string[] {
    // The limit first: it has no space, so no id can make two pages' keys alike.
    const page = after === undefined ? String(limit) : `${limit} ${after}`;
    const pages = this.#owners?.get(owner);
    const kept = pages?.get(page);
    if (kept !== undefined) return kept;
    const ids = Object.freeze(read());
    if (this.#owners === undefined) return ids;
    // A new map each time: lru-cache counts an entry's size again only when its value changes.
    const next = new Map(pages !== undefined && pages.size < pagesPerOwner ? pages : undefined);
    next.set(page, ids);
    let size = 0;
    for (const entry of next.values()) size += entry.length + 1;
    // An owner larger than the whole cache is not kept.
    this.#owners.set(owner, next, { size });
    return ids;
  }

  /** Forgets `owner`'s pages: its list changed. */
  drop(owner: string): void {
    this.#owners?.delete(owner);
  }
}
