// The README's commands, statically: every shell command is either run by
// `npm run docs:check` or skipped for a stated reason, with placeholders and
// ports the check can fill in, and every `npm run` the prose names exists.
// The check's own mechanics (state carried between commands, failures,
// expectations, streams) run here on small made-up READMEs. The full run
// against a real `npm start` is `npm run docs:check`, which .ci/run runs after
// npm test: it takes minutes on a loaded two-core machine (see its report).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  blockSkipReason,
  checkReadmeCommands,
  commandSkipReason,
  inlineScriptProblems,
  substitute,
} from "../../scripts/readme/check-commands.js";
import { readmeBlocks, splitCommands } from "../../scripts/readme/readme-commands.js";
import { debianPython, importsGrpcio } from "../support/python-grpcio.js";

const root = join(import.meta.dirname, "../..");
const readme = readFileSync(join(root, "README.md"), "utf8");
const mesh = { base: 40100, aliceId: "alice-1", productId: "product-1" };

describe("the README's commands", () => {
  const commands = readmeBlocks(readme).flatMap((block) => block.commands.map((command) => ({ block, command })));

  it("are all either run or skipped with a reason, and the run ones can be filled in", () => {
    expect(commands.length).toBeGreaterThan(25);
    for (const { block, command } of commands) {
      const skipped = blockSkipReason(block) ?? commandSkipReason(command);
      if (skipped || command.startsWith("npm start")) continue;
      expect(() => substitute(command, mesh), `README.md:${block.line}: ${command}`).not.toThrow();
    }
  });

  it("use npx @bufbuild/buf, never npx buf (an unrelated package outside the checkout)", () => {
    expect(readme.match(/npx buf\b/g)).toEqual(["npx buf"]); // the one line that warns against it
    expect(readme).toContain("Not `npx buf`: outside the\ncheckout that fetches an unrelated package");
    const grpcurl = commands.filter(({ command }) => command.startsWith("grpcurl "));
    const bufCurl = commands.filter(({ command }) => command.includes("@bufbuild/buf curl"));
    expect(grpcurl.length).toBeGreaterThan(0);
    expect(bufCurl.length).toBeGreaterThanOrEqual(grpcurl.length);
  });

  it("name only npm scripts that package.json defines", () => {
    expect(inlineScriptProblems(readme)).toEqual([]);
    expect(inlineScriptProblems("run `npm run no-such-script` first")).toEqual([
      'README.md names "npm run no-such-script", which package.json does not define',
    ]);
  });
});

describe("what the check leaves out", () => {
  it("never runs an apt-get install, and the Python client only where Debian's python3 imports grpc", () => {
    expect(commandSkipReason("sudo apt-get install -y python3-grpcio python3-protobuf")).toMatch(
      /^installs system packages/,
    );
    const [block] = readmeBlocks("<!-- docs-check: needs python3-grpcio -->\n```sh\n/usr/bin/python3 -V\n```");
    if (importsGrpcio(debianPython)) expect(blockSkipReason(block!)).toBeUndefined();
    else
      expect(blockSkipReason(block!)).toBe(
        `${debianPython} does not import grpc and google.protobuf (apt-get install python3-grpcio python3-protobuf)`,
      );
  });
});

describe("a block that needs root", () => {
  it("runs only as root, and says why it was skipped otherwise", () => {
    const [block] = readmeBlocks("<!-- docs-check: needs root -->\n```sh\nip netns list\n```");
    if (process.getuid?.() === 0) expect(blockSkipReason(block!)).toBeUndefined();
    else expect(blockSkipReason(block!)).toBe("needs root (network namespaces, a bridge); CI runs as root");
  });
});

describe("filling in a README command", () => {
  it("moves the metrics ports, 2000 above the services', with them", () => {
    expect(substitute("curl -s http://127.0.0.1:52054/metrics", mesh)).toBe("curl -s http://127.0.0.1:42103/metrics");
  });

  it("replaces the placeholders and moves the README's ports to the mesh's", () => {
    const command = `curl -d '{"user_id":"<alice id>","items":[{"product_id":"<product id>"}]}' http://127.0.0.1:50054/x 127.0.0.1:50051`;
    expect(substitute(command, mesh)).toBe(
      `curl -d '{"user_id":"alice-1","items":[{"product_id":"product-1"}]}' http://127.0.0.1:40103/x 127.0.0.1:40100`,
    );
  });

  it("moves the README's HTTP ports (1000 above) to the mesh's", () => {
    expect(substitute("curl http://127.0.0.1:51052/x http://127.0.0.1:51054/y", mesh)).toBe(
      "curl http://127.0.0.1:41101/x http://127.0.0.1:41103/y",
    );
  });

  it("points the README's data/tls/ at the mesh's own data folder", () => {
    expect(
      substitute("grpcurl -cacert data/tls/ca.pem 127.0.0.1:50052 list", { ...mesh, dataDir: "/tmp/check/data-1" }),
    ).toBe("grpcurl -cacert /tmp/check/data-1/tls/ca.pem 127.0.0.1:40101 list");
  });

  it("refuses a port that is not the README's, an unknown placeholder, and a mesh command before npm start", () => {
    expect(() => substitute("grpcurl 127.0.0.1:4222 list", mesh)).toThrow(
      "127.0.0.1:4222 is none of the README's service ports",
    );
    expect(() => substitute(`-d '{"user_id":"<bob id>"}'`, mesh)).toThrow("unknown placeholder <bob id>");
    expect(() => substitute("grpcurl 127.0.0.1:50051 list", undefined)).toThrow("no npm start came before it");
  });
});

describe("splitting a block into commands", () => {
  it("joins continued lines and function bodies, and drops comments", () => {
    const lines = [
      "# a comment",
      "f() {",
      "  echo a \\",
      "    b",
      "}",
      "",
      "f   # trailing comment",
      "echo x \\",
      "  y",
    ];
    expect(splitCommands(lines)).toEqual(["f() {\n  echo a \\\n    b\n}", "f   # trailing comment", "echo x \\\n  y"]);
  });
});

describe("running commands (the check's mechanics)", () => {
  const run = (markdown: string) => checkReadmeCommands({ readme: markdown, commandTimeoutMs: 20_000 });

  it("carries variables and functions from one command to the next, and meets its expectations", async () => {
    const markdown = [
      "<!-- docs-check: expect hello world -->",
      "```sh",
      "export GREETING=$(echo hello)",
      "say() {",
      '  echo "$GREETING $1"',
      "}",
      "say world",
      "```",
    ].join("\n");
    const { outcomes, problems } = await run(markdown);
    expect(problems).toEqual([]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(["ran", "ran", "ran"]);
  });

  it("fails on a non-zero exit, an empty exported value, and a missing expected output", async () => {
    const markdown = [
      "<!-- docs-check: expect never printed -->",
      "```sh",
      "false",
      "export TOKEN=$(true)",
      "echo fine",
      "```",
    ].join("\n");
    const { outcomes, problems } = await run(markdown);
    expect(outcomes.map((outcome) => [outcome.status, outcome.status === "failed" ? outcome.reason : ""])).toEqual([
      ["failed", "exit 1"],
      ["failed", "exit 1"],
      ["ran", ""],
    ]);
    expect(outcomes[1]!.status === "failed" && outcomes[1]!.output).toContain("TOKEN is empty");
    expect(problems).toEqual(["README.md:2: the block's output does not contain never printed"]);
  });

  it("lets a stream run until it printed, then ends it; skips what needs a missing program", async () => {
    const markdown = [
      "<!-- docs-check: stream (until Ctrl-C) -->",
      "```sh",
      "while true; do echo tick; sleep 0.2; done",
      "```",
      "<!-- docs-check: needs shopmesh-no-such-program -->",
      "```sh",
      "shopmesh-no-such-program --version",
      "```",
    ].join("\n");
    const { outcomes } = await run(markdown);
    expect(outcomes[0]).toMatchObject({ status: "ran" });
    expect(outcomes[1]).toMatchObject({
      status: "skipped",
      reason: expect.stringContaining("shopmesh-no-such-program is not installed"),
    });
  });
});
