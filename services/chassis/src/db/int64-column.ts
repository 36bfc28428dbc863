import { customType } from "drizzle-orm/sqlite-core";

/** Largest value of a Protobuf int64 and of an SQLite INTEGER. */
export const int64Max = 2n ** 63n - 1n;
/** Smallest value of a Protobuf int64 and of an SQLite INTEGER. */
export const int64Min = -(2n ** 63n);

/** Whether a whole number fits an int64. */
export function fitsInt64(value: bigint): boolean {
  return value >= int64Min && value <= int64Max;
}

/**
 * An SQLite INTEGER column holding a bigint, for amounts of money: a JS
 * number is exact only up to 2^53, an int64 goes to 2^63 - 1. Writes bind the
 * bigint as it is. Drizzle reads through statements that return numbers, so
 * a value past 2^53 would arrive already rounded: that read throws instead of
 * returning a wrong amount. Read such columns with prepareExactRows (./exact-rows.ts).
 * The SQL type stays `integer`, so switching a column to it changes no
 * migration.
 */
export const int64 = customType<{ data: bigint; driverData: bigint | number }>({
  dataType: () => "integer",
  toDriver: (value) => value,
  fromDriver: (value) => {
    if (typeof value === "bigint") return value;
    if (!Number.isSafeInteger(value)) {
      throw new RangeError(
        `int64 column read as the number ${value}, which may be rounded; read it with prepareExactRows`,
      );
    }
    return BigInt(value);
  },
});
