import { afterAll, describe, expect, it } from "vitest";
import { configureTextEncoding, getTextEncoding } from "@bufbuild/protobuf/wire";
import { useFastShortStringEncoding } from "@shopmesh/chassis";

describe("fast short-string encoding", () => {
  const standard = getTextEncoding();
  afterAll(() => configureTextEncoding(standard));

  it("produces exactly TextEncoder's bytes for ASCII, non-ASCII, empty and long strings", () => {
    useFastShortStringEncoding();
    const fast = getTextEncoding();
    expect(fast.encodeUtf8).not.toBe(standard.encodeUtf8);
    const reference = new TextEncoder();
    const samples = [
      "",
      "a",
      "01a20c98-847e-73dc-9268-5e4b6818ea34",
      "EUR",
      "Crème brûlée",
      "日本語のテキスト",
      "emoji 🚀 at the end",
      "\u007f\u0080",
      "x".repeat(128),
      "x".repeat(129),
      `${"y".repeat(127)}é`,
    ];
    for (const text of samples) expect([...fast.encodeUtf8(text)], text).toEqual([...reference.encode(text)]);
  });
});
