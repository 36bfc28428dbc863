// npm run interop refuses to run, exit 1 with a line per problem, when the
// programs it needs are not named.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const script = fileURLToPath(new URL("../src/run-interop.ts", import.meta.url));

describe("npm run interop without grpc-go's programs", () => {
  it("exits 1 and names each variable that is missing or wrong", () => {
    const env: NodeJS.ProcessEnv = { ...process.env, GRPC_INTEROP_SERVER: "/nonexistent/grpc-interop-server" };
    delete env.GRPC_INTEROP_CLIENT;
    const result = spawnSync(process.execPath, ["--import", "tsx", script], { env, encoding: "utf8", timeout: 30_000 });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("GRPC_INTEROP_CLIENT is not set");
    expect(result.stderr).toContain("GRPC_INTEROP_SERVER=/nonexistent/grpc-interop-server is not an executable file");
  });
});
