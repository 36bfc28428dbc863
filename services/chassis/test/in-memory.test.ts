// The echo ServiceImpl that the chassis hosts on grpc-js runs unchanged on
// Connect's in-memory router transport: handlers can be unit-tested without a
// server, a port or a process.
import { describe, expect, it, vi } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { EchoService } from "../../../gen/shopmesh/echo/v1/echo_pb.js";
import { createEchoService, type Observation } from "./support/echo-service.js";

function inMemoryEcho() {
  const observations: Observation[] = [];
  const transport = createRouterTransport(({ service }) => {
    service(EchoService, createEchoService(observations));
  });
  return { client: createClient(EchoService, transport), observations };
}

describe("the echo ServiceImpl on Connect's in-memory router transport", () => {
  it("answers unary calls", async () => {
    const { client, observations } = inMemoryEcho();
    const response = await client.echo({ message: "in memory" });
    expect(response.$typeName).toBe("shopmesh.echo.v1.EchoResponse");
    expect(response.message).toBe("in memory");
    expect(observations.map((o) => [o.method, o.message])).toEqual([["Echo", "in memory"]]);
  });

  it("streams server-streaming responses in order", async () => {
    const { client } = inMemoryEcho();
    const indexes: number[] = [];
    for await (const response of client.echoStream({ message: "s", count: 4 })) indexes.push(response.index);
    expect(indexes).toEqual([0, 1, 2, 3]);
  });

  it("sends the handler's ConnectError code and message", async () => {
    const { client } = inMemoryEcho();
    const error = await client
      .echo({ message: "m" }, { headers: { "x-fail-code": String(Code.NotFound), "x-fail-message": "no such thing" } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.NotFound);
    expect((error as ConnectError).rawMessage).toBe("no such thing");
  });

  it("hides a plain Error's text behind INTERNAL", async () => {
    const { client } = inMemoryEcho();
    const error = await client.echo({ message: "m" }, { headers: { "x-throw": "1" } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Internal);
    expect((error as ConnectError).rawMessage).not.toContain("hunter2");
  });

  it("steers response headers and trailers from request headers", async () => {
    const { client, observations } = inMemoryEcho();
    let header: Headers | undefined;
    let trailer: Headers | undefined;
    await client.echo(
      { message: "h" },
      {
        headers: { "x-echo-colour": "blue", "x-trailer-flavour": "salty" },
        onHeader: (value) => (header = value),
        onTrailer: (value) => (trailer = value),
      },
    );
    expect(observations[0]?.header["x-echo-colour"]).toBe("blue");
    expect(header?.get("x-echo-colour")).toBe("blue");
    expect(trailer?.get("x-trailer-flavour")).toBe("salty");
  });

  it("gives the handler the deadline and aborts it with DEADLINE_EXCEEDED", async () => {
    const { client, observations } = inMemoryEcho();
    const error = await client
      .echo({ message: "d" }, { timeoutMs: 100, headers: { "x-wait-for-abort": "1" } })
      .catch((e: unknown) => e);
    expect((error as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect(observations[0]?.timeoutMs).toBeLessThanOrEqual(100);
    expect(observations[0]?.timeoutMs).toBeGreaterThan(0);
    await vi.waitFor(() => expect(observations[0]?.aborted?.code).toBe(Code.DeadlineExceeded));
  });
});
