// Proves that `buf breaking` (FILE rules, from buf.yaml) catches the changes
// that break callers at run time, and lets additive changes through. Each case
// edits a copy of the contracts in a scratch git repository whose branch
// `main` holds the originals, then compares the working tree against it.
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../..");
const buf = join(root, "node_modules/.bin/buf");
const productsProto = "proto/shopmesh/products/v1/products.proto";
const usersProto = "proto/shopmesh/users/v1/users.proto";

let repo: string;

interface Run {
  status: number | null;
  output: string;
}

// Without GIT_DIR and friends (set when tests run from a git hook), git, buf
// and the script work on the scratch repository, never on this one.
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("GIT_")));

function run(command: string, args: string[], env: Record<string, string> = {}): Run {
  const result = spawnSync(command, args, { cwd: repo, encoding: "utf8", env: { ...baseEnv, ...env } });
  if (result.error) throw result.error;
  return { status: result.status, output: result.stdout + result.stderr };
}

function git(...args: string[]): void {
  const result = run("git", [
    "-c",
    "user.name=shopmesh",
    "-c",
    "user.email=test@shopmesh.invalid",
    "-c",
    "commit.gpgsign=false",
    ...args,
  ]);
  if (result.status !== 0) throw new Error(`git ${args.join(" ")} failed:\n${result.output}`);
}

function breaking(): Run {
  return run(buf, ["breaking", "--against", ".git#branch=main"]);
}

/** Replaces `from` (which must occur exactly once) in a contract of the scratch repo. */
function edit(file: string, from: string, to: string): void {
  const path = join(repo, file);
  const text = readFileSync(path, "utf8");
  expect(text.split(from), `${file} should contain ${from} once`).toHaveLength(2);
  writeFileSync(path, text.replace(from, to));
}

beforeAll(() => {
  repo = mkdtempSync(join(tmpdir(), "shopmesh-breaking-"));
  cpSync(join(root, "proto"), join(repo, "proto"), { recursive: true });
  cpSync(join(root, "buf.yaml"), join(repo, "buf.yaml"));
  git("init", "--quiet", "--initial-branch=main");
  git("add", "--all");
  git("commit", "--quiet", "--message", "baseline contracts");
});

afterEach(() => {
  // Back to the baseline for the next case.
  git("checkout", "--quiet", "--", ".");
  git("clean", "--quiet", "--force", "-d");
});

afterAll(() => {
  if (repo) rmSync(repo, { recursive: true, force: true });
});

describe("buf breaking against the committed contracts", () => {
  it("passes when nothing changed", () => {
    expect(breaking()).toMatchObject({ status: 0, output: "" });
  });

  it("rejects renumbering a field", () => {
    edit(productsProto, "  string description = 3;", "  string description = 6;");
    const { status, output } = breaking();
    expect(status).not.toBe(0);
    expect(output).toContain(`${productsProto}:`);
    expect(output).toContain('Previously present field "3" with name "description" on message "Product" was deleted.');
  });

  it("rejects removing a field", () => {
    edit(productsProto, "  google.protobuf.Timestamp create_time = 5;\n}", "}");
    const { status, output } = breaking();
    expect(status).not.toBe(0);
    expect(output).toContain('Previously present field "5" with name "create_time" on message "Product" was deleted.');
  });

  it("rejects renaming display_name to first_name, the classic run-time break", () => {
    edit(
      usersProto,
      "  string display_name = 3;\n  // What this user may do.",
      "  string first_name = 3;\n  // What this user may do.",
    );
    const { status, output } = breaking();
    expect(status).not.toBe(0);
    expect(output).toContain('Field "3" on message "User" changed name from "display_name" to "first_name".');
    expect(output).toContain('changed option "json_name" from "displayName" to "firstName"');
  });

  it("accepts additive changes: a new field with a new number and a new RPC", () => {
    edit(
      productsProto,
      "  google.protobuf.Timestamp create_time = 5;\n}",
      "  google.protobuf.Timestamp create_time = 5;\n  // Stock keeping unit.\n  string sku = 6;\n}",
    );
    edit(
      productsProto,
      "service ProductsService {\n",
      "service ProductsService {\n  // CountProducts counts the catalog.\n  rpc CountProducts(CountProductsRequest) returns (CountProductsResponse);\n\n",
    );
    const path = join(repo, productsProto);
    writeFileSync(
      path,
      `${readFileSync(path, "utf8")}\nmessage CountProductsRequest {}\n\nmessage CountProductsResponse {\n  int64 count = 1;\n}\n`,
    );
    expect(breaking()).toMatchObject({ status: 0, output: "" });
  });
});

describe("npm run breaking (scripts/breaking.mjs)", () => {
  it("compares against main by default and exits with buf's code for a breaking change", () => {
    edit(productsProto, "  string description = 3;", "  string description = 6;");
    const { status, output } = run(process.execPath, [join(root, "scripts/breaking.mjs")], { BREAKING_AGAINST: "" });
    expect(output).toContain("against ./.git#ref=main");
    expect(output).toContain('field "3" with name "description" on message "Product" was deleted');
    expect(status).toBe(100);
  });

  it("takes the baseline from BREAKING_AGAINST and passes when compatible", () => {
    const { status, output } = run(process.execPath, [join(root, "scripts/breaking.mjs")], {
      BREAKING_AGAINST: "HEAD",
    });
    expect(output).toContain("against ./.git#ref=HEAD");
    expect(status).toBe(0);
  });
});
