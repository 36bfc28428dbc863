// Generated sample output in README.md sits between markers:
//
//   <!-- sample:NAME -->
//   ```text
//   ...output...
//   ```
//   <!-- /sample -->
//
// so that a script can rewrite it and a test can compare it.

const samplePattern = /<!-- sample:([a-z0-9-]+) -->\n```text\n([\s\S]*?)```\n<!-- \/sample -->/g;

/** Every sample block in `markdown`, by name, with its text. */
export function readSamples(markdown: string): Map<string, string> {
  const samples = new Map<string, string>();
  for (const match of markdown.matchAll(samplePattern)) {
    if (samples.has(match[1]!)) throw new Error(`README sample "${match[1]}" appears twice`);
    samples.set(match[1]!, match[2]!);
  }
  return samples;
}

/** `markdown` with each named sample's text replaced; throws when a name has no block. */
export function writeSamples(markdown: string, samples: ReadonlyMap<string, string>): string {
  const present = readSamples(markdown);
  const missing = [...samples.keys()].filter((name) => !present.has(name));
  if (missing.length > 0)
    throw new Error(`README.md has no <!-- sample:${missing.join(" -->, <!-- sample:")} --> block`);
  return markdown.replace(samplePattern, (block, name: string) => {
    const text = samples.get(name);
    if (text === undefined) return block;
    return `<!-- sample:${name} -->\n\`\`\`text\n${text.endsWith("\n") ? text : `${text}\n`}\`\`\`\n<!-- /sample -->`;
  });
}
