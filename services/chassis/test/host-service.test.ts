// hostService with an implementation that leaves methods out: each one left
// out answers UNIMPLEMENTED, naming the method, whatever its kind, and the
// server keeps serving the others. Real gRPC over loopback, through both of
// the SDK's transports.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { createClient, createTransport, type GrpcTransport, type TransportKind } from "@shopmesh/sdk";
import { TestService } from "../../../gen/grpc/testing/test_pb.js";
import { startStreamingServer, type StreamingServer } from "./support/streaming-server.js";

let server: StreamingServer;
const transports: GrpcTransport[] = [];

beforeAll(async () => {
  server = await startStreamingServer();
});

afterAll(async () => {
  for (const transport of transports) transport.close();
  await server?.server.stop();
});

function clientFor(kind: TransportKind): Client<typeof TestService> {
  const transport = createTransport({ target: server.server.address, kind });
  transports.push(transport);
  return createClient(TestService, transport);
}

async function failure(call: () => Promise<unknown>): Promise<ConnectError | undefined> {
  try {
    await call();
    return undefined;
  } catch (error) {
    return ConnectError.from(error);
  }
}

async function drain(responses: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of responses);
}

describe.each(["grpc-js", "connect-node"] as const)("a method the implementation leaves out, over %s", (kind) => {
  it("answers UNIMPLEMENTED naming the method, unary or server-streaming", async () => {
    const client = clientFor(kind);
    const unary = await failure(() => client.emptyCall({}));
    expect(unary?.code).toBe(Code.Unimplemented);
    expect(unary?.rawMessage).toBe("grpc.testing.TestService.EmptyCall is not implemented");
    expect((await failure(() => client.unimplementedCall({})))?.code).toBe(Code.Unimplemented);
    const stream = await failure(() => drain(client.streamingOutputCall({ responseParameters: [{ size: 1 }] })));
    expect(stream?.code).toBe(Code.Unimplemented);
    expect(stream?.rawMessage).toBe("grpc.testing.TestService.StreamingOutputCall is not implemented");
  });

  it("leaves the methods that are implemented serving, before and after", async () => {
    const client = clientFor(kind);
    expect((await client.unaryCall({ responseSize: 3 })).payload?.body.length).toBe(3);
    await failure(() => client.emptyCall({}));
    expect((await client.unaryCall({ responseSize: 5 })).payload?.body.length).toBe(5);
  });
});

describe("over connect-node, which carries every kind", () => {
  it("keeps serving the client-streaming and bidi methods beside the ones left out", async () => {
    const client = clientFor("connect-node");
    expect((await failure(() => client.emptyCall({})))?.code).toBe(Code.Unimplemented);
    const response = await client.streamingInputCall(
      (async function* () {
        yield { payload: { body: new Uint8Array(4) } };
      })(),
    );
    expect(response.aggregatedPayloadSize).toBe(4);
    const sizes: number[] = [];
    for await (const answer of client.fullDuplexCall(
      (async function* () {
        yield { responseParameters: [{ size: 2 }] };
      })(),
    )) {
      sizes.push(answer.payload?.body.length ?? -1);
    }
    expect(sizes).toEqual([2]);
  });
});
