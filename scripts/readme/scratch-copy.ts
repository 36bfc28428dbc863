// A throw-away copy of the checkout to change freely (rename a field,
// regenerate, typecheck) without touching the real tree: the files git knows
// of (tracked, and new ones not ignored) as they are on disk, and a
// node_modules of links to the real one, except that the workspace packages
// (@shopmesh/*) point into the copy, so that the copy's sdk/ and gen/ are the
// ones the compiler sees.
import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, relative } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface ScratchCopy {
  readonly dir: string;
  remove(): void;
}

/** Copies `root` (a git checkout) into a new temporary folder, leaving out `exclude` (top-level folders). */
export async function scratchCopy(root: string, exclude: readonly string[] = ["reports"]): Promise<ScratchCopy> {
  const dir = mkdtempSync(join(tmpdir(), "shopmesh-scratch-"));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    const { stdout } = await run("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
      cwd: root,
      maxBuffer: 16 * 1024 * 1024,
    });
    const files = stdout.split("\0").filter((file) => file && !exclude.includes(file.split("/")[0]!));
    for (const file of files) {
      mkdirSync(dirname(join(dir, file)), { recursive: true });
      // A tracked file deleted on disk is simply not copied.
      try {
        cpSync(join(root, file), join(dir, file));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
    }
    linkNodeModules(root, dir);
    return { dir, remove };
  } catch (error) {
    remove();
    throw error;
  }
}

function linkNodeModules(root: string, dir: string): void {
  const real = join(root, "node_modules");
  const copy = join(dir, "node_modules");
  mkdirSync(copy);
  for (const entry of readdirSync(real)) {
    if (entry !== "@shopmesh") symlinkSync(join(real, entry), join(copy, entry));
  }
  // npm writes workspace links relative (../../sdk): the same text points into the copy.
  mkdirSync(join(copy, "@shopmesh"));
  for (const entry of readdirSync(join(real, "@shopmesh"))) {
    const target = readlinkSync(join(real, "@shopmesh", entry));
    symlinkSync(isAbsolute(target) ? join(dir, relative(root, target)) : target, join(copy, "@shopmesh", entry));
  }
}
