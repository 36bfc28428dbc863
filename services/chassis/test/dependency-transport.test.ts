// The transport a service calls its dependencies with, against an echo server
// on a loopback port: an outage reaches the calling code as "<dependency> is
// unavailable (UNAVAILABLE)" and the log keeps what grpc-js said, address
// included; an answer (NOT_FOUND, ...) passes unchanged.
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { Code, createClient } from "@connectrpc/connect";
import { createDependencyTransport, type Logger } from "@shopmesh/chassis";
import type { GrpcTransport } from "@shopmesh/sdk";
import { EchoService } from "../../../gen/shopmesh/echo/v1/echo_pb.js";
import { failure } from "../../../test/support/failure.js";
import { startEchoServer, type LoopbackEchoServer } from "./support/loopback-server.js";

let echo: LoopbackEchoServer;
let transport: GrpcTransport;
const lines: Record<string, unknown>[] = [];
const logger: Logger = pino(
  { level: "info" },
  { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
);

beforeAll(async () => {
  echo = await startEchoServer();
  transport = createDependencyTransport(echo.server.address, logger, { service: "echo", tls: { mode: "off" } });
});

afterAll(async () => {
  transport?.close();
  await echo?.server.stop();
});

const client = () => createClient(EchoService, transport);
const loggedFor = (detail: string) =>
  lines.filter((line) => line.msg === "call to echo failed" && String(line.detail).includes(detail));

describe("a dependency's outage", () => {
  it("reaches the caller as the dependency's name and status, with its trailers; the log has the detail and the address", async () => {
    const error = await failure(
      client().echo(
        { message: "a" },
        {
          headers: {
            "x-fail-code": String(Code.Unavailable),
            "x-fail-message": "pool at 10.1.2.3:5432 is gone",
            "x-trailer-kept": "yes",
          },
        },
      ),
    );
    expect([error.code, error.rawMessage]).toEqual([Code.Unavailable, "echo is unavailable (UNAVAILABLE)"]);
    expect(error.metadata.get("x-trailer-kept")).toBe("yes");
    expect(loggedFor("pool at 10.1.2.3:5432 is gone")).toMatchObject([
      {
        level: 40,
        dependency: "echo",
        target: echo.server.address,
        method: "shopmesh.echo.v1.EchoService/Echo",
        code: "UNAVAILABLE",
      },
    ]);
  });

  it("names a timeout as the dependency not answering in time, for a stream failing midway too", async () => {
    const slow = await failure(client().echo({ message: "b" }, { timeoutMs: 50, headers: { "x-delay-ms": "2000" } }));
    expect([slow.code, slow.rawMessage]).toEqual([
      Code.DeadlineExceeded,
      "echo did not answer in time (DEADLINE_EXCEEDED)",
    ]);

    const received: number[] = [];
    const midway = await failure(
      (async () => {
        for await (const response of client().echoStream(
          { message: "c", count: 10, intervalMs: 150 },
          { timeoutMs: 400 },
        )) {
          received.push(response.index);
        }
      })(),
    );
    expect(received.length).toBeGreaterThan(0);
    expect([midway.code, midway.rawMessage]).toEqual([
      Code.DeadlineExceeded,
      "echo did not answer in time (DEADLINE_EXCEEDED)",
    ]);
  });

  it("when nothing listens: UNAVAILABLE without the address; the log has ECONNREFUSED and the address", async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    const nowhere = createDependencyTransport(`127.0.0.1:${port}`, logger, { service: "echo", tls: { mode: "off" } });
    try {
      const error = await failure(createClient(EchoService, nowhere).echo({ message: "d" }, { timeoutMs: 2000 }));
      expect([error.code, error.rawMessage]).toEqual([Code.Unavailable, "echo is unavailable (UNAVAILABLE)"]);
      expect(loggedFor(`ECONNREFUSED 127.0.0.1:${port}`)).toMatchObject([{ target: `127.0.0.1:${port}` }]);
    } finally {
      nowhere.close();
    }
  });
});

describe("a dependency's answer", () => {
  it("passes unchanged and is not logged: NOT_FOUND, INVALID_ARGUMENT, ABORTED midway through a stream", async () => {
    const before = lines.length;
    const missing = await failure(
      client().echo(
        { message: "e" },
        { headers: { "x-fail-code": String(Code.NotFound), "x-fail-message": "widget 7 not found" } },
      ),
    );
    expect([missing.code, missing.rawMessage]).toEqual([Code.NotFound, "widget 7 not found"]);
    const invalid = await failure(
      client().echo(
        { message: "f" },
        { headers: { "x-fail-code": String(Code.InvalidArgument), "x-fail-message": "message: too long" } },
      ),
    );
    expect([invalid.code, invalid.rawMessage]).toEqual([Code.InvalidArgument, "message: too long"]);
    const aborted = await failure(
      (async () => {
        for await (const _ of client().echoStream({ message: "g", count: 5 }, { headers: { "x-fail-after": "2" } })) {
          // Two messages, then the failure.
        }
      })(),
    );
    expect([aborted.code, aborted.rawMessage]).toEqual([Code.Aborted, "failed after 2 messages"]);
    expect(lines.length).toBe(before);
  });
});
