import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { int64Max } from "@shopmesh/chassis";
import { priceOrder } from "../src/order-pricing.js";

const eur = (minorUnits: bigint) => ({ $typeName: "shopmesh.type.v1.Money" as const, currencyCode: "EUR", minorUnits });
const id = (n: number) => `01900000-0000-7000-8000-${n.toString().padStart(12, "0")}`;

function refusal(price: () => unknown): [Code, string] {
  try {
    price();
  } catch (error) {
    const cause = ConnectError.from(error);
    return [cause.code, cause.rawMessage.split(":")[0]!];
  }
  throw new Error("priced what it should have refused");
}

describe("priceOrder", () => {
  it("sums in integers: 100 lines of 999 at 999,999,999,999 come to exactly 99,899,999,999,900,100", () => {
    const items = Array.from({ length: 100 }, (_, i) => ({ productId: id(i), quantity: 999 }));
    const prices = new Map(items.map((item) => [item.productId, eur(999_999_999_999n)]));
    const priced = priceOrder(items, prices);
    expect(priced.totalMinor).toBe(99_899_999_999_900_100n);
    expect(priced.lines.every((line) => line.unitPriceMinor === 999_999_999_999n)).toBe(true);
  });

  it("reaches the int64 maximum exactly, and refuses one minor unit more, naming the line or the total", () => {
    expect(priceOrder([{ productId: id(1), quantity: 1 }], new Map([[id(1), eur(int64Max)]])).totalMinor).toBe(
      int64Max,
    );
    const half = int64Max / 2n + 1n;
    expect(refusal(() => priceOrder([{ productId: id(1), quantity: 2 }], new Map([[id(1), eur(half)]])))).toEqual([
      Code.InvalidArgument,
      "items[0].quantity",
    ]);
    const items = [
      { productId: id(1), quantity: 1 },
      { productId: id(2), quantity: 3 },
    ];
    const prices = new Map([
      [id(1), eur(int64Max - 2n)],
      [id(2), eur(1n)],
    ]);
    expect(refusal(() => priceOrder(items, prices))).toEqual([Code.InvalidArgument, "items"]);
    expect(priceOrder(items.slice(0, 1), prices).totalMinor).toBe(int64Max - 2n);
  });

  it("names a product the catalog lacks and a mix of currencies", () => {
    expect(
      refusal(() =>
        priceOrder(
          [
            { productId: id(1), quantity: 1 },
            { productId: id(2), quantity: 1 },
          ],
          new Map([[id(1), eur(5n)]]),
        ),
      ),
    ).toEqual([Code.InvalidArgument, "items[1].product_id"]);
    const mixed = new Map([
      [id(1), eur(5n)],
      [id(2), { ...eur(5n), currencyCode: "USD" }],
    ]);
    expect(
      refusal(() =>
        priceOrder(
          [
            { productId: id(1), quantity: 1 },
            { productId: id(2), quantity: 1 },
          ],
          mixed,
        ),
      ),
    ).toEqual([Code.InvalidArgument, "items"]);
  });
});
