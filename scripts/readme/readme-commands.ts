// The README's shell blocks, split into the commands a reader would type.
//
// A block is a ```sh fence. Lines right above it of the form
//   <!-- docs-check: WORDS -->
// are instructions for `npm run docs:check` (scripts/readme/check-commands.ts):
//   needs PROGRAM          run only where PROGRAM is installed, else report it skipped
//                          (needs python3-grpcio: where /usr/bin/python3 imports grpc;
//                          needs root: only when run as root)
//   expect TEXT            the block's output (stdout and stderr) contains TEXT
//   stream (why)           the last command follows a stream until Ctrl-C: it
//                          passes once it has printed something and is still
//                          running 2 s later (then it is ended), or exits 0
// Other fences (```text, ```ts, plain ```) are output or code, not commands.

export interface ReadmeBlock {
  /** The nearest heading above the block. */
  heading: string;
  /** 1-based line of the opening fence. */
  line: number;
  markers: string[];
  commands: string[];
}

export function readmeBlocks(markdown: string): ReadmeBlock[] {
  const lines = markdown.split("\n");
  const blocks: ReadmeBlock[] = [];
  let heading = "";
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^#{1,6} /.test(line)) heading = line.replace(/^#+ /, "");
    const fence = /^```(\S*)\s*$/.exec(line);
    if (!fence) continue;
    const end = lines.indexOf("```", i + 1);
    if (end < 0) throw new Error(`README.md:${i + 1}: fence never closed`);
    if (fence[1] === "sh") {
      const markers: string[] = [];
      for (let j = i - 1; j >= 0; j--) {
        const marker = /^<!-- docs-check: (.*) -->$/.exec(lines[j]!);
        if (!marker) break;
        markers.unshift(marker[1]!.trim());
      }
      blocks.push({ heading, line: i + 1, markers, commands: splitCommands(lines.slice(i + 1, end)) });
    }
    i = end;
  }
  return blocks;
}

/**
 * Joins continued lines (a trailing backslash) and multi-line function
 * bodies (`name() {` to a closing `}` line) into one command each; drops
 * blank lines and whole-line comments.
 */
export function splitCommands(lines: string[]): string[] {
  const commands: string[] = [];
  let current: string[] = [];
  let depth = 0;
  for (const line of lines) {
    if (current.length === 0 && (line.trim() === "" || line.trimStart().startsWith("#"))) continue;
    current.push(line);
    if (/\{\s*$/.test(line)) depth++;
    if (/^\s*\}\s*(#.*)?$/.test(line)) depth--;
    if (depth > 0 || /\\$/.test(line)) continue;
    commands.push(current.join("\n"));
    current = [];
  }
  if (current.length > 0) throw new Error(`README command never ends: ${current.join("\n")}`);
  return commands;
}

/** The marker's value for `key`, e.g. markerValues(["expect x"], "expect") = ["x"]. */
export function markerValues(markers: readonly string[], key: string): string[] {
  return markers
    .filter((marker) => marker === key || marker.startsWith(`${key} `))
    .map((marker) => marker.slice(key.length).trim());
}
