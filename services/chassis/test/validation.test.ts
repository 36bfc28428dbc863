// The chassis's text checks, on their own: which characters a name or a
// description may not hold, and what the refusal names.
import { describe, expect, it } from "vitest";
import { checkKey, checkText } from "@shopmesh/chassis";

function refusal(check: () => unknown): string {
  try {
    check();
  } catch (error) {
    return (error as Error).message;
  }
  return "accepted";
}

describe("checkText", () => {
  it.each([
    ["NUL", "a\u0000b", "0000"],
    ["a zero-width space", "a\u200Bb", "200B"],
    ["a right-to-left override", "a\u202Eb", "202E"],
    ["a line separator", "a\u2028b", "2028"],
    ["a paragraph separator", "a\u2029b", "2029"],
    ["a private-use code point", "a\uE000b", "E000"],
    ["a noncharacter", "a\uFFFFb", "FFFF"],
    ["a lone surrogate, as JSON can carry", "a\uD800b", "D800"],
  ])("refuses %s in a name, naming the field and the code point", (_kind, value, codePoint) => {
    expect(refusal(() => checkText("name", value, { max: 100 }))).toBe(
      `[invalid_argument] name: must not contain control, invisible, separator, private-use or noncharacter code points (found U+${codePoint})`,
    );
    expect(refusal(() => checkKey("request_id", value, { max: 100 }))).toContain("request_id: must not contain");
  });

  it("takes line breaks and tabs in a multiline text, but not a line separator", () => {
    expect(checkText("description", "one\ntwo\r\n\tthree", { max: 100, multiline: true })).toBe("one\ntwo\r\n\tthree");
    expect(refusal(() => checkText("description", "one\u2028two", { max: 100, multiline: true }))).toContain(
      "(found U+2028)",
    );
    expect(refusal(() => checkText("name", "one\ntwo", { max: 100 }))).toContain("(found U+000A)");
  });

  it("takes letters of any script, emoji and combining marks", () => {
    for (const text of ["Zoë", "Ὀδυσσεύς", "東京", "🙂 a", "e\u0301"])
      expect(checkText("name", text, { max: 100 })).toBe(text);
  });
});
