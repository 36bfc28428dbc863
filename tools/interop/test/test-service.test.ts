// grpc.testing.TestService's semantics (test-service.ts), in memory through
// Connect's router: the behaviour gRPC's interop descriptions ask of a
// server, and bad requests refused with INVALID_ARGUMENT naming the field.
import { describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport, encodeBinaryHeader } from "@connectrpc/connect";
import { TestService } from "../../../gen/grpc/testing/test_pb.js";
import {
  createTestService,
  echoInitialKey,
  echoTrailingKey,
  maxHalfDuplexRequests,
  maxPayloadBytes,
} from "../src/test-service.js";

const client = createClient(
  TestService,
  createRouterTransport(({ service }) => service(TestService, createTestService())),
);

async function failure(call: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await call();
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the call succeeded");
}

async function* each<T>(...values: T[]) {
  yield* values;
}

async function sizesOf(responses: AsyncIterable<{ payload?: { body: Uint8Array } }>): Promise<number[]> {
  const sizes: number[] = [];
  for await (const response of responses) sizes.push(response.payload?.body.length ?? -1);
  return sizes;
}

describe("UnaryCall", () => {
  it("answers a payload of zeros of the size asked for", async () => {
    const response = await client.unaryCall({ responseSize: 314_159, payload: { body: new Uint8Array(271_828) } });
    expect(response.payload?.body).toEqual(new Uint8Array(314_159));
  });

  it("fails with the status asked for, message unchanged", async () => {
    const message = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";
    const error = await failure(() => client.unaryCall({ responseStatus: { code: Code.Unknown, message } }));
    expect(error.code).toBe(Code.Unknown);
    expect(error.rawMessage).toBe(message);
  });

  it("sends the echo metadata back: initial as header, trailing (binary) as trailer", async () => {
    const trailing = encodeBinaryHeader(new Uint8Array([0xab, 0xab, 0xab]));
    let header: Headers | undefined;
    let trailer: Headers | undefined;
    await client.unaryCall(
      { responseSize: 1 },
      {
        headers: { [echoInitialKey]: "test_initial_metadata_value", [echoTrailingKey]: trailing },
        onHeader: (h) => (header = h),
        onTrailer: (t) => (trailer = t),
      },
    );
    expect(header?.get(echoInitialKey)).toBe("test_initial_metadata_value");
    expect(trailer?.get(echoTrailingKey)).toBe(trailing);
  });

  it("refuses bad requests with INVALID_ARGUMENT naming the field", async () => {
    const cases: [Parameters<typeof client.unaryCall>[0], string][] = [
      [{ responseSize: -1 }, "response_size: -1 bytes is outside"],
      [{ responseSize: maxPayloadBytes + 1 }, `response_size: ${maxPayloadBytes + 1} bytes is outside`],
      [{ responseType: 7 as never }, "response_type: 7 is not a payload type"],
      [{ responseStatus: { code: 99, message: "x" } }, "response_status.code: 99 is not a gRPC status code"],
      [{ expectCompressed: { value: true } }, "expect_compressed: this server cannot tell"],
    ];
    for (const [request, message] of cases) {
      const error = await failure(() => client.unaryCall(request));
      expect(error.code, message).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toContain(message);
    }
  });
});

describe("the other methods", () => {
  it("EmptyCall answers an empty message", async () => {
    expect((await client.emptyCall({})).$typeName).toBe("grpc.testing.Empty");
  });

  it("UnimplementedCall is left out: UNIMPLEMENTED", async () => {
    expect((await failure(() => client.unimplementedCall({}))).code).toBe(Code.Unimplemented);
  });

  it("StreamingInputCall adds up the payload sizes", async () => {
    const sizes = [27_182, 8, 1_828, 45_904];
    const response = await client.streamingInputCall(
      each(...sizes.map((n) => ({ payload: { body: new Uint8Array(n) } }))),
    );
    expect(response.aggregatedPayloadSize).toBe(74_922);
  });

  it("StreamingOutputCall answers one payload per response parameter, in order", async () => {
    const sizes = [31_415, 9, 2_653, 58_979];
    const responses = client.streamingOutputCall({ responseParameters: sizes.map((size) => ({ size })) });
    expect(await sizesOf(responses)).toEqual(sizes);
  });

  it("FullDuplexCall answers each request, and fails with a request's status naming which request was bad", async () => {
    expect(
      await sizesOf(
        client.fullDuplexCall(each({ responseParameters: [{ size: 2 }] }, { responseParameters: [{ size: 3 }] })),
      ),
    ).toEqual([2, 3]);
    const bad = await failure(() =>
      sizesOf(
        client.fullDuplexCall(
          each({ responseParameters: [{ size: 1 }] }, { responseParameters: [{ size: 1, intervalUs: -5 }] }),
        ),
      ),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.rawMessage).toBe("request 1: response_parameters[0].interval_us: -5 is outside 0..10000000");
  });

  it("HalfDuplexCall answers only after the requests end, all of them in order", async () => {
    const responses = client.halfDuplexCall(
      each({ responseParameters: [{ size: 5 }, { size: 6 }] }, { responseParameters: [{ size: 7 }] }),
    );
    expect(await sizesOf(responses)).toEqual([5, 6, 7]);
  });

  it("HalfDuplexCall refuses to hold more requests than its bound", async () => {
    const requests = Array.from({ length: maxHalfDuplexRequests + 1 }, () => ({ responseParameters: [{ size: 1 }] }));
    const error = await failure(() => sizesOf(client.halfDuplexCall(each(...requests))));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe(
      `request ${maxHalfDuplexRequests}: a half-duplex call holds at most ${maxHalfDuplexRequests} requests`,
    );
  });
});
