import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
const servicesDir = join(root, "services");
const dataOwners = ["users", "products", "orders", "user-orders"];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (name === "node_modules") return [];
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith(".ts") ? [path] : [];
  });
}

const specifierPattern = /(?:from\s+|import\s*\(\s*|import\s+)["']([^"']+)["']/g;

/** Which other service's code or database a file reaches into, if any. */
function trespasses(file: string, owner: string, text: string): string[] {
  const found: string[] = [];
  for (const [, specifier] of text.matchAll(specifierPattern)) {
    if (!specifier) continue;
    if (specifier.startsWith(".")) {
      const target = relative(servicesDir, resolve(dirname(file), specifier)).split(sep)[0];
      if (target && target !== owner && dataOwners.includes(target)) found.push(specifier);
    } else {
      const pkg = /^@shopmesh\/([^/]+)/.exec(specifier)?.[1];
      if (pkg && pkg !== owner && dataOwners.includes(pkg)) found.push(specifier);
    }
  }
  for (const other of dataOwners.filter((name) => name !== owner)) {
    // "orders.sqlite" but not "user-orders.sqlite".
    const file = new RegExp(`(?<![\\w-])${other}\\.sqlite`);
    if (file.test(text) || text.includes(`readDatabasePath("${other}"`)) found.push(`${other}'s database`);
  }
  return found;
}

describe("service boundaries", () => {
  const owners = dataOwners.filter((name) => {
    try {
      return statSync(join(servicesDir, name, "src")).isDirectory();
    } catch {
      return false;
    }
  });

  it.each(owners)("%s imports no other service's code and opens no other service's database", (owner) => {
    const offences = sourceFiles(join(servicesDir, owner)).flatMap((file) =>
      trespasses(file, owner, readFileSync(file, "utf8")).map((what) => `${relative(root, file)}: ${what}`),
    );
    expect(offences).toEqual([]);
  });

  it("notices a trespass when there is one", () => {
    const file = join(servicesDir, "orders", "src", "example.ts");
    expect(trespasses(file, "orders", 'import { users } from "../../users/src/db/schema.js";')).toHaveLength(1);
    expect(trespasses(file, "orders", 'import { UserStore } from "@shopmesh/users";')).toHaveLength(1);
    expect(trespasses(file, "orders", 'new Database("data/products.sqlite")')).toHaveLength(1);
    expect(
      trespasses(
        join(servicesDir, "user-orders", "src", "example.ts"),
        "user-orders",
        'join(dir, "user-orders.sqlite")',
      ),
    ).toEqual([]);
    expect(
      trespasses(join(servicesDir, "user-orders", "src", "example.ts"), "user-orders", 'join(dir, "orders.sqlite")'),
    ).toHaveLength(1);
    expect(trespasses(file, "orders", 'openDatabase({ path: readDatabasePath("users", env) })')).toHaveLength(1);
    expect(
      trespasses(file, "orders", 'import { hosted } from "@shopmesh/chassis";\nimport { x } from "./db/schema.js";'),
    ).toEqual([]);
  });
});
