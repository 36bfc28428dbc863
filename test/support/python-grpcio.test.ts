// Finding a Python with grpcio: skip with a reason that names the packages,
// fail instead where SHOPMESH_REQUIRE lists python3-grpcio.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { requirePythonGrpcio } from "./python-grpcio.js";

const dir = mkdtempSync(join(tmpdir(), "shopmesh-python-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const empty = join(dir, "empty");
mkdirSync(empty);
// A python3 that runs but imports nothing: what pyenv's python3 is beside Debian's packages.
const bare = join(dir, "bare");
mkdirSync(bare);
writeFileSync(join(bare, "python3"), "#!/bin/sh\nexit 1\n");
chmodSync(join(bare, "python3"), 0o755);

describe("requirePythonGrpcio", () => {
  it("skips with one printed line naming the packages when no python3 imports grpc", () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    try {
      const found = requirePythonGrpcio("the frobnication test", { PATH: bare }, []);
      expect(found.missing).toBe(true);
      expect(found.path).toBeUndefined();
      expect(found.skipReason).toBe(
        `no Python 3 that imports grpc and google.protobuf (tried ${join(bare, "python3")}): skipping the frobnication test. To run it: apt-get install python3-grpcio python3-protobuf (Debian/Ubuntu, for /usr/bin/python3), or set SHOPMESH_PYTHON to a python3 that has them.`,
      );
      requirePythonGrpcio("the frobnication test", { PATH: bare }, []);
      expect(warn).toHaveBeenCalledTimes(1);
    } finally {
      warn.mockRestore();
    }
  });

  it("fails instead of skipping where SHOPMESH_REQUIRE lists python3-grpcio", () => {
    expect(() =>
      requirePythonGrpcio(
        "the frobnication test",
        { PATH: empty, SHOPMESH_REQUIRE: "nats-server, python3-grpcio" },
        [],
      ),
    ).toThrow(
      /^python3-grpcio is required here \(SHOPMESH_REQUIRE=nats-server, python3-grpcio\) but there is no Python 3 that imports grpc and google.protobuf \(tried no python3 on PATH\)/,
    );
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    try {
      // A list that does not name it allows the skip, CI or not.
      expect(
        requirePythonGrpcio("the frobnication test", { PATH: empty, CI: "true", SHOPMESH_REQUIRE: "nats-server" }, [])
          .missing,
      ).toBe(true);
    } finally {
      warn.mockRestore();
    }
  });

  it("tries only SHOPMESH_PYTHON when it is set", () => {
    expect(() =>
      requirePythonGrpcio(
        "the frobnication test",
        { PATH: bare, SHOPMESH_PYTHON: join(empty, "python3"), SHOPMESH_REQUIRE: "python3-grpcio" },
        [join(bare, "python3")],
      ),
    ).toThrow(`(tried ${join(empty, "python3")})`);
  });
});
