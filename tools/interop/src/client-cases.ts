// The credential-free client cases of the gRPC interop suite (grpc/grpc's
// doc/interop-test-descriptions.md), run through the shopmesh SDK against any
// server of grpc.testing.TestService. Each case sends what the description
// says and checks what it says the client must assert.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, decodeBinaryHeader, encodeBinaryHeader } from "@connectrpc/connect";
import { createClient, createTransport, type Client, type TransportKind } from "@shopmesh/sdk";
import {
  PayloadType,
  StreamingOutputCallRequestSchema,
  type Payload,
  type StreamingOutputCallRequest,
} from "../../../gen/grpc/testing/messages_pb.js";
import { TestService, UnimplementedService } from "../../../gen/grpc/testing/test_pb.js";
import { interopCases, type CaseResult, type InteropCase } from "./interop-cases.js";
import { RequestQueue } from "./request-queue.js";

export interface ClientCaseOptions {
  host: string;
  port: number;
  kind: TransportKind;
}

interface Clients {
  test: Client<typeof TestService>;
  unimplemented: Client<typeof UnimplementedService>;
}

/** A case's assertion that did not hold. */
class CaseFailure extends Error {}

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new CaseFailure(what);
}

// A case that hangs fails on this deadline instead of holding up the run.
const callTimeoutMs = 10_000;

const requestSizes = [27182, 8, 1828, 45904];
const responseSizes = [31415, 9, 2653, 58979];
const largeRequestSize = 271828;
const largeResponseSize = 314159;
const echoInitialKey = "x-grpc-test-echo-initial";
const echoInitialValue = "test_initial_metadata_value";
const echoTrailingKey = "x-grpc-test-echo-trailing-bin";
const echoTrailingValue = new Uint8Array([0xab, 0xab, 0xab]);
const statusMessage = "test status message";
const specialStatusMessage = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";

const cases: Record<InteropCase, (clients: Clients) => Promise<void>> = {
  async empty_unary({ test }) {
    const response = await test.emptyCall({}, { timeoutMs: callTimeoutMs });
    check(response !== undefined && response !== null, "the response is null");
  },

  async large_unary({ test }) {
    const response = await test.unaryCall(
      { responseSize: largeResponseSize, payload: zeros(largeRequestSize) },
      { timeoutMs: callTimeoutMs },
    );
    checkPayload(response.payload, largeResponseSize, "the response");
  },

  async client_streaming({ test }) {
    const response = await test.streamingInputCall(each(requestSizes.map((size) => ({ payload: zeros(size) }))), {
      timeoutMs: callTimeoutMs,
    });
    check(
      response.aggregatedPayloadSize === 74922,
      `aggregated_payload_size is ${response.aggregatedPayloadSize}, not 74922`,
    );
  },

  async server_streaming({ test }) {
    const sizes: number[] = [];
    const request = { responseParameters: responseSizes.map((size) => ({ size })) };
    for await (const response of test.streamingOutputCall(request, { timeoutMs: callTimeoutMs })) {
      checkPayload(response.payload, responseSizes[sizes.length] ?? 0, `response ${sizes.length + 1}`);
      sizes.push(response.payload?.body.length ?? -1);
    }
    check(sizes.length === 4, `${sizes.length} responses, not exactly four`);
  },

  async ping_pong({ test }) {
    const requests = new RequestQueue<StreamingOutputCallRequest>();
    const responses = test.fullDuplexCall(requests, { timeoutMs: callTimeoutMs })[Symbol.asyncIterator]();
    try {
      for (const [index, size] of responseSizes.entries()) {
        requests.push(duplexRequest({ responseParameters: [{ size }], payload: zeros(requestSizes[index] ?? 0) }));
        const next = await responses.next();
        check(!next.done, `the stream ended after ${index} responses, before the reply to request ${index + 1}`);
        checkPayload(next.value.payload, size, `response ${index + 1}`);
      }
      requests.close();
      const end = await responses.next();
      check(end.done === true, "more than four responses");
    } finally {
      requests.close();
      await responses.return?.();
    }
  },

  async empty_stream({ test }) {
    let count = 0;
    for await (const _ of test.fullDuplexCall(each([]), { timeoutMs: callTimeoutMs })) count++;
    check(count === 0, `${count} responses, not zero`);
  },

  async timeout_on_sleeping_server({ test }) {
    // The request stream stays open: the client waits for the deadline.
    const requests = new RequestQueue<StreamingOutputCallRequest>();
    requests.push(duplexRequest({ payload: zeros(27182) }));
    try {
      await expectStatus(drain(test.fullDuplexCall(requests, { timeoutMs: 1 })), Code.DeadlineExceeded);
    } finally {
      requests.close();
    }
  },

  async cancel_after_begin({ test }) {
    const requests = new RequestQueue<{ payload: Payload }>();
    const controller = new AbortController();
    const call = test.streamingInputCall(requests, { signal: controller.signal, timeoutMs: callTimeoutMs });
    controller.abort();
    try {
      await expectStatus(call, Code.Canceled);
    } finally {
      requests.close();
    }
  },

  async cancel_after_first_response({ test }) {
    const requests = new RequestQueue<StreamingOutputCallRequest>();
    requests.push(duplexRequest({ responseParameters: [{ size: 31415 }], payload: zeros(27182) }));
    const controller = new AbortController();
    let received = 0;
    const call = (async () => {
      for await (const response of test.fullDuplexCall(requests, {
        signal: controller.signal,
        timeoutMs: callTimeoutMs,
      })) {
        received++;
        checkPayload(response.payload, 31415, "the first response");
        controller.abort();
      }
    })();
    try {
      await expectStatus(call, Code.Canceled);
      check(received === 1, `${received} responses before the cancellation, not one`);
    } finally {
      requests.close();
    }
  },

  async status_code_and_message({ test }) {
    const responseStatus = { code: 2, message: statusMessage };
    await expectStatus(test.unaryCall({ responseStatus }, { timeoutMs: callTimeoutMs }), Code.Unknown, statusMessage);
    await expectStatus(
      drain(test.fullDuplexCall(each([duplexRequest({ responseStatus })]), { timeoutMs: callTimeoutMs })),
      Code.Unknown,
      statusMessage,
    );
  },

  async special_status_message({ test }) {
    const responseStatus = { code: 2, message: specialStatusMessage };
    await expectStatus(
      test.unaryCall({ responseStatus }, { timeoutMs: callTimeoutMs }),
      Code.Unknown,
      specialStatusMessage,
    );
  },

  async custom_metadata({ test }) {
    const headers = {
      [echoInitialKey]: echoInitialValue,
      [echoTrailingKey]: encodeBinaryHeader(echoTrailingValue),
    };
    let header: Headers | undefined;
    let trailer: Headers | undefined;
    const observe = {
      headers,
      timeoutMs: callTimeoutMs,
      onHeader: (value: Headers) => (header = value),
      onTrailer: (value: Headers) => (trailer = value),
    };
    const response = await test.unaryCall(
      { responseSize: largeResponseSize, payload: zeros(largeRequestSize) },
      observe,
    );
    checkPayload(response.payload, largeResponseSize, "the unary response");
    checkEchoedMetadata(header, trailer, "UnaryCall");

    header = undefined;
    trailer = undefined;
    const request = duplexRequest({
      responseParameters: [{ size: largeResponseSize }],
      payload: zeros(largeRequestSize),
    });
    let count = 0;
    for await (const streamed of test.fullDuplexCall(each([request]), observe)) {
      count++;
      checkPayload(streamed.payload, largeResponseSize, "the streamed response");
    }
    check(count === 1, `FullDuplexCall gave ${count} responses, not one`);
    checkEchoedMetadata(header, trailer, "FullDuplexCall");
  },

  async unimplemented_method({ test }) {
    await expectStatus(test.unimplementedCall({}, { timeoutMs: callTimeoutMs }), Code.Unimplemented);
  },

  async unimplemented_service({ unimplemented }) {
    await expectStatus(unimplemented.unimplementedCall({}, { timeoutMs: callTimeoutMs }), Code.Unimplemented);
  },
};

/**
 * Runs every case, one after another, over one transport of the given kind,
 * and reports each: a failed case does not stop the others.
 */
export async function runClientCases(options: ClientCaseOptions): Promise<CaseResult[]> {
  const transport = createTransport({ target: `${options.host}:${options.port}`, kind: options.kind });
  const clients: Clients = {
    test: createClient(TestService, transport),
    unimplemented: createClient(UnimplementedService, transport),
  };
  const results: CaseResult[] = [];
  try {
    for (const name of interopCases) {
      try {
        await cases[name](clients);
        results.push({ case: name, ok: true });
      } catch (error) {
        results.push({ case: name, ok: false, detail: describe(error) });
      }
    }
  } finally {
    transport.close();
  }
  return results;
}

function describe(error: unknown): string {
  if (error instanceof CaseFailure) return error.message;
  if (error instanceof ConnectError) return `the call failed: ${Code[error.code]}: ${error.rawMessage}`;
  return String(error);
}

/** A payload of `size` zero bytes, as the cases send. */
function zeros(size: number): { type: PayloadType; body: Uint8Array } {
  return { type: PayloadType.COMPRESSABLE, body: new Uint8Array(size) };
}

function duplexRequest(init: MessageInitShape<typeof StreamingOutputCallRequestSchema>): StreamingOutputCallRequest {
  return create(StreamingOutputCallRequestSchema, init);
}

function checkPayload(payload: Payload | undefined, size: number, what: string): void {
  check(payload !== undefined, `${what} has no payload`);
  check(payload.body.length === size, `${what} has ${payload.body.length} bytes, not ${size}`);
  check(
    payload.body.every((byte) => byte === 0),
    `${what} is not all zeros`,
  );
}

function checkEchoedMetadata(header: Headers | undefined, trailer: Headers | undefined, call: string): void {
  const initial = header?.get(echoInitialKey);
  check(initial === echoInitialValue, `${call}: initial metadata ${echoInitialKey} is ${String(initial)}`);
  const trailing = trailer?.get(echoTrailingKey);
  check(
    trailing !== null && trailing !== undefined && sameBytes(decodeBinaryHeader(trailing), echoTrailingValue),
    `${call}: trailing metadata ${echoTrailingKey} is ${String(trailing)}, not 0xababab`,
  );
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, index) => byte === b[index]);
}

/** Awaits a call that must fail with `code` (and `message`, when given). */
async function expectStatus(call: Promise<unknown>, code: Code, message?: string): Promise<void> {
  try {
    await call;
  } catch (error) {
    if (error instanceof CaseFailure) throw error;
    const status = ConnectError.from(error);
    check(status.code === code, `status ${Code[status.code]} (${status.rawMessage}), not ${Code[code]}`);
    if (message !== undefined) {
      check(
        status.rawMessage === message,
        `status message ${JSON.stringify(status.rawMessage)}, not ${JSON.stringify(message)}`,
      );
    }
    return;
  }
  throw new CaseFailure(`the call succeeded; expected ${Code[code]}`);
}

/** Reads a response stream to its end. */
async function drain(responses: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of responses) {
    // Only the outcome matters.
  }
}

async function* each<T>(messages: T[]): AsyncGenerator<T> {
  yield* messages;
}
