// The gRPC interop client cases, through both SDK transport kinds, against
// grpc-go's reference interop server (GRPC_INTEROP_SERVER, or
// grpc-interop-server on PATH) in a process of its own on loopback.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TransportKind } from "@shopmesh/sdk";
import { requireProgram } from "../../../test/support/optional-program.js";
import { runClientCases } from "../src/client-cases.js";
import { interopCases } from "../src/interop-cases.js";
import { freePort } from "../src/free-port.js";

const interopServer = requireProgram("grpc-interop-server", {
  envVariable: "GRPC_INTEROP_SERVER",
  neededFor: "the gRPC interop client cases",
});

describe.skipIf(interopServer.missing)("the gRPC interop client cases against grpc-go's interop server", () => {
  let server: ChildProcess | undefined;
  let port = 0;

  beforeAll(async () => {
    port = await freePort();
    const started = spawn(interopServer.path!, ["-port", String(port)], { stdio: ["ignore", "ignore", "pipe"] });
    server = started;
    let stderr = "";
    started.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      if (stderr.length < 16 * 1024) stderr += chunk;
    });
    const exited = once(started, "exit").then(([code]) => {
      throw new Error(`grpc-interop-server exited with ${String(code)} before it was ready\n${stderr}`);
    });
    exited.catch(() => undefined);
    await Promise.race([acceptsConnections(port), exited]);
  });

  afterAll(async () => {
    if (!server || server.exitCode !== null || server.signalCode !== null) return;
    const exited = once(server, "exit");
    server.kill("SIGKILL");
    await exited;
  });

  it.each<TransportKind>(["grpc-js", "connect-node"])("every case passes through the %s transport", async (kind) => {
    const results = await runClientCases({ host: "127.0.0.1", port, kind });
    expect(results.map((result) => result.case)).toEqual([...interopCases]);
    expect(results.filter((result) => !result.ok)).toEqual([]);
  });
});

/** Resolves once a TCP connection to the port succeeds; retries a refusal every 25 ms for up to 10 s. */
async function acceptsConnections(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const connected = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (connected) return;
    if (Date.now() > deadline) throw new Error(`nothing accepted connections on port ${port} within ${timeoutMs} ms`);
    await sleep(25);
  }
}
