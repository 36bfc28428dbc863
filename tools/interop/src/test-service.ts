import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { EmptySchema } from "../../../gen/grpc/testing/empty_pb.js";
import {
  PayloadSchema,
  PayloadType,
  SimpleResponseSchema,
  StreamingInputCallResponseSchema,
  StreamingOutputCallResponseSchema,
  type BoolValue,
  type EchoStatus,
  type Payload,
  type ResponseParameters,
  type SimpleRequest,
  type StreamingOutputCallRequest,
  type StreamingOutputCallResponse,
} from "../../../gen/grpc/testing/messages_pb.js";
import type { TestService } from "../../../gen/grpc/testing/test_pb.js";

/** Request metadata the service sends back as response header (custom_metadata). */
export const echoInitialKey = "x-grpc-test-echo-initial";
/** Binary request metadata the service sends back as response trailer (custom_metadata). */
export const echoTrailingKey = "x-grpc-test-echo-trailing-bin";

/** Largest payload the service makes: ample for the suite's largest (314,159 bytes), small enough to bound memory. */
export const maxPayloadBytes = 2 * 1024 * 1024;
/** Most responses one request may ask for. */
export const maxResponseParameters = 1_000;
/** Longest pause one response may ask for before it is sent (10 s, in µs). */
export const maxIntervalUs = 10_000_000;
/** Most requests a HalfDuplexCall holds before it answers them. */
export const maxHalfDuplexRequests = 1_000;

/**
 * `grpc.testing.TestService` as gRPC's interop test descriptions
 * (grpc/grpc doc/interop-test-descriptions.md) specify it: payloads of zeros
 * of the asked size, the asked status returned instead of an answer, request
 * metadata `x-grpc-test-echo-initial` sent back as response header and
 * `x-grpc-test-echo-trailing-bin` as response trailer, and
 * `UnimplementedCall` left out, so that it answers UNIMPLEMENTED.
 *
 * What the service cannot do it refuses with INVALID_ARGUMENT naming the
 * field, instead of answering as if it had: it cannot tell whether a request
 * arrived compressed (`expect_compressed`). It does not compress its
 * answers (`response_compressed` is a request the spec lets a server ignore)
 * and has no credentials to report (`fill_username`, `fill_oauth_scope`).
 */
export function createTestService(): Partial<ServiceImpl<typeof TestService>> {
  return {
    emptyCall(_request, context) {
      echoMetadata(context);
      return create(EmptySchema);
    },

    unaryCall: simpleAnswer,
    cacheableUnaryCall: simpleAnswer,

    async *streamingOutputCall(request, context) {
      echoMetadata(context);
      yield* answersTo(request, "", context);
    },

    async streamingInputCall(requests, context) {
      echoMetadata(context);
      let aggregatedPayloadSize = 0;
      let index = 0;
      for await (const request of requests) {
        checkNotExpectingCompression(request.expectCompressed, `request ${index}: expect_compressed`);
        aggregatedPayloadSize += request.payload?.body.length ?? 0;
        index++;
      }
      return create(StreamingInputCallResponseSchema, { aggregatedPayloadSize });
    },

    async *fullDuplexCall(requests, context) {
      echoMetadata(context);
      let index = 0;
      for await (const request of requests) {
        yield* answersTo(request, `request ${index}: `, context);
        index++;
      }
    },

    async *halfDuplexCall(requests, context) {
      echoMetadata(context);
      const received: StreamingOutputCallRequest[] = [];
      for await (const request of requests) {
        if (received.length === maxHalfDuplexRequests) {
          throw invalid(
            `request ${received.length}: a half-duplex call holds at most ${maxHalfDuplexRequests} requests`,
          );
        }
        // Checked as it arrives: a bad request fails the call without waiting for the rest.
        checkStreamingRequest(request, `request ${received.length}: `);
        received.push(request);
      }
      for (const [index, request] of received.entries()) yield* answersTo(request, `request ${index}: `, context);
    },
  };
}

function simpleAnswer(request: SimpleRequest, context: HandlerContext) {
  echoMetadata(context);
  checkResponseType(request.responseType, "response_type");
  checkNotExpectingCompression(request.expectCompressed, "expect_compressed");
  checkSize(request.responseSize, "response_size");
  failWith(request.responseStatus, "response_status");
  return create(SimpleResponseSchema, { payload: zeros(request.responseSize) });
}

async function* answersTo(
  request: StreamingOutputCallRequest,
  field: string,
  context: HandlerContext,
): AsyncGenerator<StreamingOutputCallResponse> {
  checkStreamingRequest(request, field);
  failWith(request.responseStatus, `${field}response_status`);
  for (const parameters of request.responseParameters) {
    if (parameters.intervalUs > 0) await pause(parameters.intervalUs, context.signal);
    yield create(StreamingOutputCallResponseSchema, { payload: zeros(parameters.size) });
  }
}

function checkStreamingRequest(request: StreamingOutputCallRequest, field: string): void {
  checkResponseType(request.responseType, `${field}response_type`);
  if (request.responseParameters.length > maxResponseParameters) {
    throw invalid(
      `${field}response_parameters: ${request.responseParameters.length} entries, at most ${maxResponseParameters}`,
    );
  }
  request.responseParameters.forEach((parameters: ResponseParameters, index: number) => {
    const at = `${field}response_parameters[${index}]`;
    checkSize(parameters.size, `${at}.size`);
    if (parameters.intervalUs < 0 || parameters.intervalUs > maxIntervalUs) {
      throw invalid(`${at}.interval_us: ${parameters.intervalUs} is outside 0..${maxIntervalUs}`);
    }
  });
}

function checkResponseType(type: PayloadType, field: string): void {
  if (type !== PayloadType.COMPRESSABLE) throw invalid(`${field}: ${type} is not a payload type (only COMPRESSABLE)`);
}

function checkSize(size: number, field: string): void {
  if (size < 0 || size > maxPayloadBytes) throw invalid(`${field}: ${size} bytes is outside 0..${maxPayloadBytes}`);
}

function checkNotExpectingCompression(expectCompressed: BoolValue | undefined, field: string): void {
  if (expectCompressed?.value) {
    throw invalid(`${field}: this server cannot tell whether a request arrived compressed`);
  }
}

/** Throws the status a request asks for, if it asks for one. */
function failWith(status: EchoStatus | undefined, field: string): void {
  if (status === undefined || status.code === 0) return;
  if (!Number.isInteger(status.code) || status.code < 1 || status.code > 16) {
    throw invalid(`${field}.code: ${status.code} is not a gRPC status code`);
  }
  throw new ConnectError(status.message, status.code as Code);
}

/** Sends the echo metadata of the request back: initial as response header, trailing as response trailer. */
function echoMetadata(context: HandlerContext): void {
  const initial = context.requestHeader.get(echoInitialKey);
  if (initial !== null) context.responseHeader.set(echoInitialKey, initial);
  const trailing = context.requestHeader.get(echoTrailingKey);
  if (trailing !== null) context.responseTrailer.set(echoTrailingKey, trailing);
}

function zeros(size: number): Payload {
  return create(PayloadSchema, { type: PayloadType.COMPRESSABLE, body: new Uint8Array(size) });
}

async function pause(intervalUs: number, signal: AbortSignal): Promise<void> {
  await sleep(intervalUs / 1000, undefined, { signal }).catch(() => {
    throw signal.reason;
  });
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}
