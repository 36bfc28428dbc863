// The option readers the commands share: numbers are written in decimal
// digits, and a refusal names the option.
import { describe, expect, it } from "vitest";
import { readBenchSettings } from "../src/bench/bench-settings.js";
import { numberOption, UsageError } from "../src/command-line.js";
import { readSoakSettings } from "../src/robustness/soak-settings.js";

describe("numberOption", () => {
  it("takes decimal numbers in range, whole ones when asked", () => {
    expect(numberOption("duration", "2.5", 0.1, 60)).toBe(2.5);
    expect(numberOption("concurrency", "64", 1, 4096, true)).toBe(64);
  });

  it.each([
    ["0x10", false],
    ["1e3", false],
    ["0b11", false],
    [" 16 ", false],
    ["-1", false],
    ["", false],
    ["Infinity", false],
    ["1.5", true],
    ["5000", true],
  ])("refuses %j (whole: %s), naming the option", (text, whole) => {
    expect(() => numberOption("concurrency", text, 1, 4096, whole)).toThrow(UsageError);
    expect(() => numberOption("concurrency", text, 1, 4096, whole)).toThrow(/^--concurrency: expected a /);
  });

  it("is what bench and soak read their numbers with", () => {
    expect(() => readBenchSettings(["--port-base", "0x7530"])).toThrow(/^--port-base: expected a whole number/);
    expect(() => readBenchSettings(["--concurrency", " 0x10 "])).toThrow(/^--concurrency: expected a whole number/);
    expect(() => readBenchSettings(["--connections", "0b11"])).toThrow(/^--connections: expected a whole number/);
    expect(() => readSoakSettings(["--seconds", "0x10"])).toThrow(/^--seconds: expected a number/);
    expect(readBenchSettings(["--concurrency", "1, 16"]).concurrency).toEqual([1, 16]);
  });
});
