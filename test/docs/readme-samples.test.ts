// The README's sample outputs are what the commands print now: the same
// generator as `npm run docs:samples` runs (in a scratch copy of the
// checkout) and its output must equal the text between the README's markers.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { readSamples, writeSamples } from "../../scripts/readme/markers.js";
import { readmePath, renderSamples } from "../../scripts/readme/samples.js";

describe("README sample outputs", () => {
  it("match what buf breaking and tsc print for the display_name rename (npm run docs:samples rewrites them)", async () => {
    const readme = readFileSync(readmePath, "utf8");
    const generated = await renderSamples();
    const inReadme = readSamples(readme);
    expect([...inReadme.keys()].sort()).toEqual([...generated.keys()].sort());
    for (const [name, text] of generated) {
      expect(inReadme.get(name), `README sample "${name}" is stale: run npm run docs:samples`).toBe(text);
    }
  }, 300_000);

  it("rewrites only the text between a sample's markers", () => {
    const readme =
      "intro\n<!-- sample:a -->\n```text\nold\n```\n<!-- /sample -->\nmiddle\n<!-- sample:b -->\n```text\nkeep\n```\n<!-- /sample -->\n";
    const updated = writeSamples(readme, new Map([["a", "new 1\nnew 2\n"]]));
    expect(updated).toBe(
      "intro\n<!-- sample:a -->\n```text\nnew 1\nnew 2\n```\n<!-- /sample -->\nmiddle\n<!-- sample:b -->\n```text\nkeep\n```\n<!-- /sample -->\n",
    );
    expect(readSamples(updated)).toEqual(
      new Map([
        ["a", "new 1\nnew 2\n"],
        ["b", "keep\n"],
      ]),
    );
    expect(() => writeSamples(readme, new Map([["c", "x"]]))).toThrow("<!-- sample:c -->");
  });
});
