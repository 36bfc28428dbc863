// The rule for optional system programs: skip with a reason that names the
// package where one is missing, fail instead where it is required (CI).
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { findProgram, isRequired, requireProgram } from "./optional-program.js";

const dir = mkdtempSync(join(tmpdir(), "shopmesh-programs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const absent = "shopmesh-no-such-program";
const options = {
  debianPackage: "shopmesh-pkg",
  envVariable: "SHOPMESH_TEST_BIN",
  neededFor: "the frobnication tests",
};

describe("requireProgram", () => {
  it("finds a program on PATH", () => {
    const program = requireProgram("node", {}, { PATH: dirname(process.execPath) });
    expect(program).toEqual({
      name: "node",
      path: join(dirname(process.execPath), "node"),
      missing: false,
      skipReason: undefined,
    });
  });

  it("skips with one printed line naming the package, once per program", () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    try {
      const first = requireProgram(absent, options, { PATH: dir });
      const second = requireProgram(absent, options, { PATH: dir });
      expect(first.missing).toBe(true);
      expect(first.skipReason).toBe(
        `${absent} is not on PATH: skipping the frobnication tests. To run them: apt-get install shopmesh-pkg (Debian/Ubuntu), or set SHOPMESH_TEST_BIN to its path.`,
      );
      expect(second.skipReason).toBe(first.skipReason);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn).toHaveBeenCalledWith(`skipped: ${first.skipReason}`);
    } finally {
      warn.mockRestore();
    }
  });

  it("fails instead of skipping on CI, and where SHOPMESH_REQUIRE names the program", () => {
    expect(() => requireProgram(absent, options, { PATH: dir, CI: "true" })).toThrow(
      `${absent} is required here (CI=true) but not on PATH, and the frobnication tests may not be skipped. To fix: apt-get install shopmesh-pkg`,
    );
    expect(() => requireProgram(absent, options, { PATH: dir, SHOPMESH_REQUIRE: `other, ${absent}` })).toThrow(
      /SHOPMESH_REQUIRE=other, shopmesh-no-such-program/,
    );
  });

  it("reads SHOPMESH_REQUIRE before CI", () => {
    expect(isRequired("nats-server", {})).toBe(false);
    expect(isRequired("nats-server", { CI: "false" })).toBe(false);
    expect(isRequired("nats-server", { CI: "1" })).toBe(true);
    expect(isRequired("nats-server", { CI: "true", SHOPMESH_REQUIRE: "none" })).toBe(false);
    expect(isRequired("chromium", { SHOPMESH_REQUIRE: "nats-server" })).toBe(false);
    expect(isRequired("chromium", { SHOPMESH_REQUIRE: "all" })).toBe(true);
  });

  it("takes the executable the environment variable names, and refuses one that is not executable", () => {
    const script = join(dir, "fake-server");
    writeFileSync(script, "#!/bin/sh\n");
    expect(() => findProgram("fake-server", { envVariable: "FAKE_BIN" }, { FAKE_BIN: script })).toThrow("FAKE_BIN=");
    chmodSync(script, 0o755);
    expect(findProgram("fake-server", { envVariable: "FAKE_BIN" }, { FAKE_BIN: script, PATH: "" })).toBe(script);
    expect(findProgram("fake-server", {}, { PATH: `/nonexistent:${dir}` })).toBe(script);
  });
});
