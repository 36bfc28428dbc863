// RowCache: reads by id that take what the cache holds and read only the
// rest, against a table that records every read it serves.
import { describe, expect, it } from "vitest";
import { RowCache } from "../src/index.js";

interface Row {
  id: string;
  name: string;
}

/** A table of rows by id that records the ids of every read. */
function table(names: Record<string, string>) {
  const rows = new Map(Object.entries(names).map(([id, name]) => [id, { id, name }]));
  const reads: { many: string[][]; one: string[] } = { many: [], one: [] };
  return {
    rows,
    reads,
    readMany: (ids: readonly string[]) => {
      reads.many.push([...ids]);
      // In the table's own order, not the ids': the cache must not rely on it.
      return [...rows.values()].filter((row) => ids.includes(row.id)).map((row) => ({ ...row }));
    },
    readOne: (id: string) => {
      reads.one.push(id);
      const row = rows.get(id);
      return row && { ...row };
    },
  };
}

const idOf = (row: Row) => row.id;

describe("RowCache", () => {
  it("reads only the ids it lacks, each once, in one read, and hands out the same row after", () => {
    const source = table({ a: "A", b: "B", c: "C" });
    const cache = new RowCache({ entries: 10, idOf, readMany: source.readMany });
    const first = cache.get("b");
    expect(first?.name).toBe("B");
    expect(source.reads.many).toEqual([["b"]]);
    const many = cache.getMany(["c", "b", "x", "c", "a", "x"]);
    expect(source.reads.many).toEqual([["b"], ["c", "x", "a"]]);
    expect([...many.keys()].sort()).toEqual(["a", "b", "c"]);
    expect(many.get("b")).toBe(first);
    expect(cache.getInOrder(["c", "x", "a", "b"]).map((row) => row.name)).toEqual(["C", "A", "B"]);
    // x is absent, so it is read again (an absent row is not remembered).
    expect(source.reads.many).toEqual([["b"], ["c", "x", "a"], ["x"]]);
    expect(cache.get("x")).toBeUndefined();
    expect(cache.getMany([]).size).toBe(0);
    expect(source.reads.many).toHaveLength(4);
  });

  it("uses readOne for a single id when given it", () => {
    const source = table({ a: "A" });
    const cache = new RowCache({ entries: 10, idOf, readMany: source.readMany, readOne: source.readOne });
    expect(cache.get("a")?.name).toBe("A");
    expect(cache.get("a")?.name).toBe("A");
    expect(cache.get("z")).toBeUndefined();
    expect(source.reads).toEqual({ many: [], one: ["a", "z"] });
  });

  it("takes a row from the source again once it is deleted, and keeps a row it is given", () => {
    const source = table({ a: "A", b: "B" });
    const cache = new RowCache({ entries: 10, idOf, readMany: source.readMany });
    cache.getMany(["a", "b"]);
    source.rows.set("a", { id: "a", name: "A2" });
    expect(cache.get("a")?.name).toBe("A");
    cache.delete("a");
    expect(cache.get("a")?.name).toBe("A2");
    const written = { id: "b", name: "B2" };
    expect(cache.set(written)).toBe(written);
    expect(cache.getInOrder(["b", "a"]).map((row) => row.name)).toEqual(["B2", "A2"]);
    expect(source.reads.many).toEqual([["a", "b"], ["a"]]);
  });

  it("keeps at most `entries` rows, dropping the least recently read", () => {
    const source = table({ a: "A", b: "B", c: "C" });
    const cache = new RowCache({ entries: 2, idOf, readMany: source.readMany });
    cache.get("a");
    cache.get("b");
    cache.get("a");
    cache.get("c");
    expect(source.reads.many).toEqual([["a"], ["b"], ["c"]]);
    cache.getMany(["a", "b", "c"]);
    expect(source.reads.many.at(-1)).toEqual(["b"]);
  });

  it("with no entries, reads every time and still answers in order", () => {
    const source = table({ a: "A", b: "B" });
    const cache = new RowCache({ entries: 0, idOf, readMany: source.readMany });
    expect(cache.getInOrder(["b", "a"]).map((row) => row.name)).toEqual(["B", "A"]);
    cache.set({ id: "a", name: "not kept" });
    expect(cache.get("a")?.name).toBe("A");
    expect(source.reads.many).toEqual([["b", "a"], ["a"]]);
  });

  it("freezes every row it hands out, with the objects and arrays inside it, the cache on or off", () => {
    interface Order {
      id: string;
      lines: { productId: string; quantity: number }[];
      extra?: { note: string };
      bytes?: Uint8Array;
    }
    const read = (ids: readonly string[]): Order[] =>
      ids.map((id) => ({
        id,
        lines: [{ productId: "p", quantity: 1 }],
        extra: { note: "n" },
        bytes: new Uint8Array([1, 2]),
      }));
    for (const entries of [10, 0]) {
      const cache = new RowCache<Order>({ entries, idOf: (order) => order.id, readMany: read });
      const given: Order = { id: "w", lines: [{ productId: "q", quantity: 2 }] };
      for (const order of [
        cache.get("a")!,
        cache.getMany(["b"]).get("b")!,
        cache.getInOrder(["c"])[0]!,
        cache.set(given),
      ]) {
        expect(() => {
          order.id = "changed";
        }).toThrow(TypeError);
        expect(() => order.lines.push({ productId: "x", quantity: 9 })).toThrow(TypeError);
        expect(() => {
          order.lines[0]!.quantity = 99;
        }).toThrow(TypeError);
        if (order.extra) {
          expect(() => {
            order.extra!.note = "changed";
          }).toThrow(TypeError);
        }
        // A typed array cannot be frozen; it is left as it is rather than failing the read.
        if (order.bytes) expect(Object.isFrozen(order.bytes)).toBe(false);
      }
      expect(cache.get("a")!.lines[0]!.quantity).toBe(1);
    }
  });

  it("refuses a size that is not a whole number of 0 or more", () => {
    for (const entries of [-1, 1.5, Number.NaN]) {
      expect(() => new RowCache({ entries, idOf, readMany: () => [] })).toThrow(/RowCache entries/);
    }
  });
});
