// gRPC's interop suite against the chassis: the TestService process
// (src/main.ts) on a free port, and grpc-go's interop client running a few
// of the cases npm run interop runs (all of them there). Skipped with a reason
// where GRPC_INTEROP_CLIENT does not name the client; required on CI.
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnService, type ServiceProcess } from "@shopmesh/cli";
import { requireProgram } from "../../../test/support/optional-program.js";
import { freePort } from "../src/free-port.js";
import { runGoClientCase, runGoClientCases } from "../src/interop-cases.js";

const goClient = requireProgram("grpc-interop-client", {
  envVariable: "GRPC_INTEROP_CLIENT",
  neededFor: "the gRPC interop tests",
});

describe.skipIf(goClient.missing)("grpc-go's interop client against the chassis TestService", () => {
  let server: ServiceProcess;

  beforeAll(async () => {
    server = await spawnService({
      entry: fileURLToPath(new URL("../src/main.ts", import.meta.url)),
      env: { TLS: "off" },
    });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it("passes the cases that cover every method kind, metadata, status, deadline and cancellation", async () => {
    const cases = [
      "custom_metadata",
      "client_streaming",
      "ping_pong",
      "timeout_on_sleeping_server",
      "cancel_after_first_response",
      "special_status_message",
      "unimplemented_method",
    ];
    const results = await runGoClientCases({ client: goClient.path!, host: "127.0.0.1", port: server.port }, cases);
    expect(results).toEqual(cases.map((name) => ({ case: name, ok: true })));
  });

  it("reports a case that fails as failed, with the client's reason", async () => {
    // Nothing listens there: the client's call fails, so the case does.
    const port = await freePort();
    const result = await runGoClientCase("empty_unary", { client: goClient.path!, host: "127.0.0.1", port });
    expect(result.ok).toBe(false);
    expect(result.detail).toMatch(/^exit \d+/);
  });
});
