// Checks the contracts in the current directory (where buf.yaml is) for
// breaking changes against a git baseline, with the FILE rules from buf.yaml.
//
//   npm run breaking                               against the local branch main
//   BREAKING_AGAINST=origin/main npm run breaking  against any git ref: a branch,
//                                                  a remote-tracking branch, a tag,
//                                                  a commit, HEAD~1
//   BREAKING_AGAINST='https://github.com/o/r.git#branch=main,subdir=app' ...
//                                                  any buf input, passed as is
//                                                  (it contains "#" or "://")
//
// A plain ref becomes `<repo>/.git#ref=<ref>` (`ref=` accepts everything a
// `branch=` does, and more), with `subdir=` when buf.yaml is not at the root of
// the git repository. In a CI checkout of a pull request, fetch the base
// branch first (`git fetch origin main`) and set BREAKING_AGAINST=origin/main.
// Exits with buf's exit code: 0 when compatible, 100 for breaking changes.
import { spawnSync } from "node:child_process";
import { relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const buf = resolve(fileURLToPath(import.meta.url), "../../node_modules/.bin/buf");
const requested = process.env.BREAKING_AGAINST?.trim() || "main";

const against = requested.includes("#") || requested.includes("://") ? requested : gitInput(requested);
console.log(`buf breaking: comparing ${process.cwd()} against ${against}`);
const result = spawnSync(buf, ["breaking", "--against", against], { stdio: "inherit" });
if (result.error) {
  console.error(`buf breaking: cannot run ${buf}: ${result.error.message}`);
  process.exit(1);
}
if (result.status === 0) console.log("buf breaking: no breaking changes");
process.exit(result.status ?? 1);

/** Builds a buf git input for a ref of the repository that holds the cwd. */
function gitInput(ref) {
  const top = git(["rev-parse", "--show-toplevel"]);
  const subdir = git(["rev-parse", "--show-prefix"]).replace(/\/$/, "");
  // Fail early, with a hint, instead of with git's message from inside buf.
  git(
    ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`],
    `git ref "${ref}" not found; fetch it first (git fetch origin ${ref.replace(/^origin\//, "")}) or set BREAKING_AGAINST`,
  );
  const gitDir = `${relative(process.cwd(), top) || "."}/.git`;
  return `${gitDir}#ref=${ref}${subdir ? `,subdir=${subdir}` : ""}`;
}

function git(args, failure = "not inside a git repository") {
  const result = spawnSync("git", args, { encoding: "utf8" });
  if (result.status !== 0) {
    console.error(`buf breaking: ${failure}`);
    process.exit(2);
  }
  return result.stdout.trim();
}
