// The handler context hostService gives a unary call, driven by a stand-in
// for grpc-js's call object and a fake clock: which status a client's
// cancellation close to the deadline becomes, and that a signal made late
// still carries why the call ended.
import { EventEmitter } from "node:events";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Metadata, status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import type { HandlerContext } from "@connectrpc/connect";
import { hostService } from "@shopmesh/chassis";
import { EchoService } from "../../../gen/shopmesh/echo/v1/echo_pb.js";

type UnaryHandler = (call: FakeCall, callback: (error: Partial<ServiceError> | null, value?: unknown) => void) => void;

class FakeCall extends EventEmitter {
  readonly metadata = new Metadata();
  constructor(
    readonly request: unknown,
    private readonly deadline: number,
  ) {
    super();
  }
  getDeadline() {
    return this.deadline;
  }
  sendMetadata() {}
}

/** Hosts `echo` and returns grpc-js's handler for it, as the server would call it. */
function echoHandler(echo: (request: unknown, context: HandlerContext) => Promise<unknown>): UnaryHandler {
  let handlers: Record<string, UnaryHandler> = {};
  const server = {
    addService: (_: unknown, implementation: object) => {
      handlers = implementation as Record<string, UnaryHandler>;
    },
  };
  hostService(server, EchoService, { echo, echoStream: async function* () {} } as never);
  return handlers.echo!;
}

/** Runs one call that waits for its signal; `cancelAtMs` is when the client cancels. */
async function cancelledAt(timeoutMs: number, cancelAtMs: number) {
  const handler = echoHandler(
    (_, context) =>
      new Promise((_, reject) => context.signal.addEventListener("abort", () => reject(context.signal.reason))),
  );
  const call = new FakeCall({ message: "hi" }, Date.now() + timeoutMs);
  let status: Partial<ServiceError> | null | undefined;
  handler(call, (error) => (status = error));
  await vi.advanceTimersByTimeAsync(cancelAtMs);
  call.emit("cancelled");
  await vi.advanceTimersByTimeAsync(0);
  return status?.code;
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("a client's cancellation", () => {
  it("counts as the deadline within a fifth of the call's whole timeout of it", async () => {
    // 1 s timeout: the slack is 200 ms, however little is left when the cancellation arrives.
    expect(await cancelledAt(1000, 850)).toBe(GrpcStatus.DEADLINE_EXCEEDED);
    expect(await cancelledAt(1000, 990)).toBe(GrpcStatus.DEADLINE_EXCEEDED);
  });

  it("is a cancellation earlier than that", async () => {
    expect(await cancelledAt(1000, 700)).toBe(GrpcStatus.CANCELLED);
  });
});

describe("a signal asked for late", () => {
  it("is already aborted, with the reason the call ended", async () => {
    let context: HandlerContext | undefined;
    let release: () => void = () => undefined;
    const handler = echoHandler(async (_, ctx) => {
      context = ctx;
      await new Promise<void>((resolve) => (release = resolve));
      return { message: "late" };
    });
    const call = new FakeCall({ message: "hi" }, Infinity);
    let status: Partial<ServiceError> | null | undefined;
    handler(call, (error) => (status = error));
    await vi.advanceTimersByTimeAsync(0);
    call.emit("cancelled");
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(status).toBeNull();
    // The handler never looked at its signal; made now, it says the client went away.
    expect(context!.signal.aborted).toBe(true);
    expect(String(context!.signal.reason)).toMatch(/cancelled/);
  });
});
