// PageIdsCache: the ids on an owner's pages, read once and kept until the
// owner is dropped, against a list that counts every read it serves.
import { describe, expect, it } from "vitest";
import { PageIdsCache } from "../src/index.js";

/** Owners' lists of ids, newest first, that record every page read. */
function lists(owners: Record<string, number>) {
  const reads: string[] = [];
  const ids = new Map(
    Object.entries(owners).map(([owner, count]) => [owner, Array.from({ length: count }, (_, n) => `${owner}${n}`)]),
  );
  return {
    reads,
    add(owner: string) {
      const list = ids.get(owner)!;
      list.unshift(`${owner}${list.length}`);
    },
    /** A reader of `owner`'s page of `size` ids from `start`, as a store's statement would be. */
    page: (owner: string, start: number, size: number) => () => {
      reads.push(`${owner} ${start} ${size}`);
      return ids.get(owner)!.slice(start, start + size);
    },
  };
}

describe("PageIdsCache", () => {
  it("reads each page once, keeping pages and owners apart", () => {
    const source = lists({ a: 5, b: 3 });
    const cache = new PageIdsCache({ ids: 100 });
    for (let round = 0; round < 3; round++) {
      expect(cache.get("a", 2, undefined, source.page("a", 0, 2))).toEqual(["a0", "a1"]);
      expect(cache.get("a", 2, "a1", source.page("a", 2, 2))).toEqual(["a2", "a3"]);
      expect(cache.get("b", 2, undefined, source.page("b", 0, 2))).toEqual(["b0", "b1"]);
    }
    expect(source.reads).toEqual(["a 0 2", "a 2 2", "b 0 2"]);
    // Another limit, or an empty id to follow, is another page.
    cache.get("a", 3, undefined, source.page("a", 0, 3));
    cache.get("a", 2, "", source.page("a", 5, 2));
    cache.get("a", 22, "a1", source.page("a", 2, 22));
    expect(source.reads.slice(3)).toEqual(["a 0 3", "a 5 2", "a 2 22"]);
  });

  it("reads an owner's pages again once it is dropped, and only that owner's", () => {
    const source = lists({ a: 3, b: 3 });
    const cache = new PageIdsCache({ ids: 100 });
    cache.get("a", 2, undefined, source.page("a", 0, 2));
    cache.get("b", 2, undefined, source.page("b", 0, 2));
    source.add("a");
    cache.drop("a");
    expect(cache.get("a", 2, undefined, source.page("a", 0, 2))).toEqual(["a3", "a0"]);
    expect(cache.get("b", 2, undefined, source.page("b", 0, 2))).toEqual(["b0", "b1"]);
    expect(source.reads).toEqual(["a 0 2", "b 0 2", "a 0 2"]);
  });

  it("keeps at most the ids it is given, evicting the owner read longest ago", () => {
    const source = lists({ a: 4, b: 12, c: 4, big: 20 });
    // Each page counts its ids and one more: three owners' 4-id pages do not fit in 12.
    const cache = new PageIdsCache({ ids: 12 });
    cache.get("a", 4, undefined, source.page("a", 0, 4));
    cache.get("b", 4, undefined, source.page("b", 0, 4));
    cache.get("a", 4, undefined, source.page("a", 0, 4));
    cache.get("c", 4, undefined, source.page("c", 0, 4));
    expect(source.reads).toEqual(["a 0 4", "b 0 4", "c 0 4"]);
    cache.get("a", 4, undefined, source.page("a", 0, 4));
    cache.get("b", 4, undefined, source.page("b", 0, 4));
    expect(source.reads.slice(3)).toEqual(["b 0 4"]);
    // An owner's pages count together: b's second page makes its pages 10 of the 12, and a goes.
    cache.get("b", 4, "b3", source.page("b", 4, 4));
    cache.get("a", 4, undefined, source.page("a", 0, 4));
    expect(source.reads.slice(4)).toEqual(["b 4 4", "a 0 4"]);
    // A third would make b's pages larger than the whole cache: they are not kept.
    cache.get("b", 4, "b7", source.page("b", 8, 4));
    cache.get("b", 4, undefined, source.page("b", 0, 4));
    expect(source.reads.slice(6)).toEqual(["b 8 4", "b 0 4"]);
    source.reads.splice(4);
    // An owner larger than the whole cache is answered and not kept.
    expect(cache.get("big", 20, undefined, source.page("big", 0, 20))).toHaveLength(20);
    expect(cache.get("big", 20, undefined, source.page("big", 0, 20))).toHaveLength(20);
    expect(source.reads.slice(4)).toEqual(["big 0 20", "big 0 20"]);
  });

  it("answers every page right past the pages it keeps per owner", () => {
    const source = lists({ a: 100 });
    const cache = new PageIdsCache({ ids: 10_000 });
    for (let round = 0; round < 2; round++) {
      for (let start = 0; start < 100; start += 2) {
        expect(cache.get("a", 2, String(start), source.page("a", start, 2))).toEqual([`a${start}`, `a${start + 1}`]);
      }
    }
    // Fifty pages are more than one owner keeps: they were read again, and the latest are kept.
    expect(source.reads.length).toBeGreaterThan(50);
    const reads = source.reads.length;
    expect(cache.get("a", 2, "98", source.page("a", 98, 2))).toEqual(["a98", "a99"]);
    expect(source.reads).toHaveLength(reads);
  });

  it("reads every page with no room, and hands out frozen ids either way", () => {
    for (const ids of [0, 100]) {
      const source = lists({ a: 3 });
      const cache = new PageIdsCache({ ids });
      const page = cache.get("a", 2, undefined, source.page("a", 0, 2));
      cache.get("a", 2, undefined, source.page("a", 0, 2));
      expect(source.reads).toHaveLength(ids === 0 ? 2 : 1);
      expect(Object.isFrozen(page)).toBe(true);
    }
    expect(() => new PageIdsCache({ ids: -1 })).toThrow(RangeError);
    expect(() => new PageIdsCache({ ids: 1.5 })).toThrow(/whole number/);
  });
});
