// Admission control: a server runs at most MAX_CALLS_IN_FLIGHT unary calls,
// lets MAX_CALLS_QUEUED wait, and refuses the rest at once with
// RESOURCE_EXHAUSTED; a waiting call keeps its place until a slot frees or
// its deadline ends, and is refused (its handler never running) only when no
// slot has freed for 4 × MAX_QUEUE_WAIT. Health
// checks and server streams are not held. Real gRPC over loopback, with
// handlers that block until the test lets them go.
import { once } from "node:events";
import { type ClientHttp2Session, connect } from "node:http2";
import { fileURLToPath } from "node:url";
import { Client as RawClient, credentials, status as GrpcStatus, type ServiceError } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { ServiceImpl } from "@connectrpc/connect";
import { Code, createClient, createTransport, retryPushbackMs, type Client, type GrpcTransport } from "@shopmesh/sdk";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@shopmesh/sdk/health/v1";
import { admissionWaitMs, createLogger, hosted, startServer, type RunningServer } from "@shopmesh/chassis";
import { arrivalGraceMs } from "../src/server/request-arrivals.js";
import { spawnService } from "@shopmesh/cli";
import { FaultInjectionService } from "@shopmesh/sdk/faults/v1";
import { create, toBinary } from "@bufbuild/protobuf";
import { EchoRequestSchema, EchoService, EchoStreamRequestSchema } from "../../../gen/shopmesh/echo/v1/echo_pb.js";
import { grpcFrame, streamStatus } from "../../../test/support/raw-grpc-call.js";
import { asConnectError, readAll, settle } from "./support/call-outcome.js";

/**
 * An echo service whose calls with a message starting "block" wait until
 * released (whatever happens to the call meanwhile), "fail" throws, and
 * "follow" waits until the call's signal is aborted.
 */
function blockingEcho() {
  const started: string[] = [];
  const blocked = new Map<string, () => void>();
  const impl: ServiceImpl<typeof EchoService> = {
    async echo(request, context) {
      started.push(request.message);
      if (request.message === "fail") throw new Error("the handler failed");
      if (request.message === "follow") {
        await new Promise((resolve) => context.signal.addEventListener("abort", resolve, { once: true }));
        throw context.signal.reason;
      }
      if (request.message.startsWith("block"))
        await new Promise<void>((resolve) => blocked.set(request.message, resolve));
      return { message: request.message };
    },
    async *echoStream(request) {
      started.push(request.message);
      yield { message: request.message, index: 0 };
    },
  };
  return {
    impl,
    started,
    /** Waits until the handler of `message` is running. */
    async running(message: string) {
      await vi.waitFor(() => expect(blocked.has(message)).toBe(true), { timeout: 5_000 });
    },
    release(message: string) {
      const resolve = blocked.get(message);
      if (resolve === undefined) throw new Error(`${message} is not blocked`);
      blocked.delete(message);
      resolve();
    },
    releaseAll() {
      for (const resolve of blocked.values()) resolve();
      blocked.clear();
    },
  };
}

/**
 * Sends Echo calls over a bare HTTP/2 session, each either whole or with its
 * message but never its end, as no gRPC client would.
 */
/** Sends one request message to `path`, ending the request only when `whole`. */
function rawSender(session: ClientHttp2Session) {
  return (path: string, message: Uint8Array, whole: boolean) => {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.write(grpcFrame(message));
    if (whole) stream.end();
    return stream;
  };
}

function echoSender(session: ClientHttp2Session) {
  const send = rawSender(session);
  return (message: string, whole: boolean) =>
    send(
      "/shopmesh.echo.v1.EchoService/Echo",
      toBinary(EchoRequestSchema, create(EchoRequestSchema, { message })),
      whole,
    );
}

interface Limited {
  server: RunningServer;
  echo: ReturnType<typeof blockingEcho>;
  client: Client<typeof EchoService>;
  health: Client<typeof Health>;
  transport: GrpcTransport;
}

async function startLimited(admission: {
  maxCallsInFlight: number;
  maxCallsQueued: number;
  maxQueueWaitMs: number;
}): Promise<Limited> {
  const echo = blockingEcho();
  const server = await startServer({
    config: {
      host: "127.0.0.1",
      port: 0,
      shutdownDelayMs: 0,
      shutdownGraceMs: 2_000,
      maxRequestBytes: 1024 * 1024,
      admission,
    },
    logger: createLogger("admission-test", "silent"),
    services: [hosted(EchoService, echo.impl)],
  });
  const transport = createTransport({ target: server.address });
  const client = createClient(EchoService, transport);
  // One call in and out, so that the server has a hold time to estimate waits with: before that it queues nothing.
  await client.echo({ message: "warm-up" });
  return { server, echo, transport, client, health: createClient(Health, transport) };
}

async function stopLimited(limited: Limited | undefined) {
  if (limited === undefined) return;
  limited.echo.releaseAll();
  limited.transport.close();
  await limited.server.stop();
}

describe("admission control, 2 calls in flight and 1 waiting", () => {
  let limited: Limited;

  beforeAll(async () => {
    limited = await startLimited({ maxCallsInFlight: 2, maxCallsQueued: 1, maxQueueWaitMs: 30_000 });
  });

  afterEach(() => limited.echo.releaseAll());

  afterAll(() => stopLimited(limited));

  it("refuses a call at once when both slots and the queue are taken, answers health meanwhile, and starts the waiting call when a slot frees", async () => {
    const { client, health, echo } = limited;
    const first = settle(client.echo({ message: "block-1" }));
    const second = settle(client.echo({ message: "block-2" }));
    await echo.running("block-1");
    await echo.running("block-2");

    const waiting = settle(client.echo({ message: "waiting" }));
    await vi.waitFor(() => expect(limited.server.admission?.waiting).toBe(1), { timeout: 5_000 });
    // The 4th call finds both slots and the only queue place taken.
    const refused = await settle(client.echo({ message: "refused" }));
    const error = asConnectError(refused.error);
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.rawMessage).toBe("server overloaded: 2 calls in progress, 1 waiting");
    // With how long to wait before trying again: the first refusal gets the shortest pushback (50 ms), jittered ±50 %.
    expect(retryPushbackMs(error)).toBeGreaterThanOrEqual(25);
    expect(retryPushbackMs(error)).toBeLessThanOrEqual(75);
    expect(echo.started).not.toContain("refused");
    expect(echo.started).not.toContain("waiting");

    // Health checks and server streams are not held by admission control.
    expect((await health.check({})).status).toBe(ServingStatus.SERVING);
    expect(await readAll(client.echoStream({ message: "stream while full", count: 1 }))).toHaveLength(1);

    echo.release("block-1");
    expect((await first).value?.message).toBe("block-1");
    const answered = await waiting;
    expect(answered.error).toBeUndefined();
    expect(answered.value?.message).toBe("waiting");

    echo.release("block-2");
    expect((await second).value?.message).toBe("block-2");
  });

  it("keeps a waiting call's place past half its deadline, until its deadline ends it, without running its handler", async () => {
    const { client, echo } = limited;
    const blocks = [settle(client.echo({ message: "block-3" })), settle(client.echo({ message: "block-4" }))];
    await echo.running("block-3");
    await echo.running("block-4");

    const refusedBefore = limited.server.admission?.refusals.count;
    // Queued on the warm-up's hold of a few ms; the slots stay taken for its whole deadline.
    const outcome = await settle(client.echo({ message: "too late" }, { timeoutMs: 1_000 }));
    expect(asConnectError(outcome.error).code).toBe(Code.DeadlineExceeded);
    // Not refused after half its deadline (500 ms): it waited until the end.
    expect(outcome.elapsedMs).toBeGreaterThanOrEqual(950);
    await vi.waitFor(() => expect(limited.server.admission?.waiting).toBe(0), { timeout: 5_000 });
    expect(limited.server.admission?.refusals.count).toBe(refusedBefore);

    echo.releaseAll();
    await Promise.all(blocks);
    expect(echo.started).not.toContain("too late");
  });

  it("frees the queue place of a waiting call whose client gives up", async () => {
    const { client, echo } = limited;
    const blocks = [settle(client.echo({ message: "block-5" })), settle(client.echo({ message: "block-6" }))];
    await echo.running("block-5");
    await echo.running("block-6");

    const controller = new AbortController();
    const abandoned = settle(client.echo({ message: "abandoned" }, { signal: controller.signal }));
    // Waiting, not refused: the queue place is taken until the client cancels.
    const refusedWhileWaiting = asConnectError((await settle(client.echo({ message: "refused while waiting" }))).error);
    expect(refusedWhileWaiting.code).toBe(Code.ResourceExhausted);
    expect(limited.server.admission?.waiting).toBe(1);
    controller.abort();
    expect(asConnectError((await abandoned).error).code).toBe(Code.Canceled);
    await vi.waitFor(() => expect(limited.server.admission?.waiting).toBe(0), { timeout: 5_000 });

    // The place is free again: the next call waits, and runs when a slot frees.
    const next = settle(client.echo({ message: "after the cancel" }));
    await vi.waitFor(() => expect(limited.server.admission?.waiting).toBe(1), { timeout: 5_000 });
    echo.release("block-5");
    expect((await next).value?.message).toBe("after the cancel");
    echo.releaseAll();
    await Promise.all(blocks);
    expect(echo.started).not.toContain("abandoned");
  });
});

describe("admission control, calls without a deadline", () => {
  let limited: Limited;

  beforeAll(async () => {
    limited = await startLimited({ maxCallsInFlight: 1, maxCallsQueued: 4, maxQueueWaitMs: 300 });
  });

  afterAll(() => stopLimited(limited));

  it("refuses a waiting call with RESOURCE_EXHAUSTED only when no slot has come free for 4 × MAX_QUEUE_WAIT", async () => {
    const { client, echo } = limited;
    const block = settle(client.echo({ message: "block" }));
    await echo.running("block");

    const outcome = await settle(client.echo({ message: "no deadline" }));
    const error = asConnectError(outcome.error);
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(error.rawMessage).toMatch(/^server overloaded: 1 calls in progress, and none has finished for 1\d{3} ms$/);
    expect(retryPushbackMs(error)).toBeGreaterThan(0);
    expect(outcome.elapsedMs).toBeGreaterThanOrEqual(1_150);

    echo.release("block");
    await block;
    expect(echo.started).not.toContain("no deadline");
  });
});

describe("admission control in a service process", () => {
  it("reads its limits from the environment, and leaves health and the admin listener out of it", async () => {
    const echoMain = fileURLToPath(new URL("./support/echo-main.ts", import.meta.url));
    const service = await spawnService({
      entry: echoMain,
      env: {
        TLS: "off",
        MAX_CALLS_IN_FLIGHT: "1",
        MAX_CALLS_QUEUED: "0",
        FAULT_INJECTION: "on",
        DEVELOPMENT_MODE: "on",
      },
    });
    const transport = createTransport({ target: service.address });
    const adminTransport = createTransport({ target: `127.0.0.1:${service.adminPort}` });
    try {
      const echo = createClient(EchoService, transport);
      const slow = settle(echo.echo({ message: "slow" }, { headers: { "x-delay-ms": "3000" } }));
      const refused = await vi.waitFor(
        async () => {
          const outcome = await settle(echo.echo({ message: "refused" }));
          expect(outcome.error).toBeDefined();
          return asConnectError(outcome.error);
        },
        { timeout: 2_500, interval: 20 },
      );
      expect(refused.code).toBe(Code.ResourceExhausted);
      expect(refused.rawMessage).toBe("server overloaded: 1 calls in progress, 0 waiting");
      // While the only slot is taken: health answers, and so does the admin listener, several calls at once.
      expect((await createClient(Health, transport).check({})).status).toBe(ServingStatus.SERVING);
      const admin = createClient(FaultInjectionService, adminTransport);
      const listed = await Promise.all([admin.listFaults({}), admin.listFaults({}), admin.listFaults({})]);
      expect(listed.map((response) => response.faults)).toEqual([[], [], []]);
      expect((await slow).value?.message).toBe("slow");
      const overloaded = service.logs.find((entry) => entry.msg === "overloaded: refusing calls");
      expect(overloaded).toMatchObject({ level: "warn", running: 1, waiting: 0 });
    } finally {
      transport.close();
      adminTransport.close();
      expect(await service.stop()).toBe(0);
    }
  });
});

describe("admission control, the slot of a call that ends", () => {
  let limited: Limited;

  beforeAll(async () => {
    limited = await startLimited({ maxCallsInFlight: 1, maxCallsQueued: 0, maxQueueWaitMs: 300 });
  });

  afterEach(() => limited.echo.releaseAll());

  afterAll(() => stopLimited(limited));

  const running = () => limited.server.admission?.running;

  it("is free again after the handler fails", async () => {
    const outcome = await settle(limited.client.echo({ message: "fail" }));
    expect(asConnectError(outcome.error).code).toBe(Code.Internal);
    await vi.waitFor(() => expect(running()).toBe(0), { timeout: 5_000 });
  });

  it("is free again after the client cancels a handler that follows its signal", async () => {
    const controller = new AbortController();
    const call = settle(limited.client.echo({ message: "follow" }, { signal: controller.signal }));
    await vi.waitFor(() => expect(limited.echo.started).toContain("follow"), { timeout: 5_000 });
    expect(running()).toBe(1);
    controller.abort();
    expect(asConnectError((await call).error).code).toBe(Code.Canceled);
    await vi.waitFor(() => expect(running()).toBe(0), { timeout: 5_000 });
  });

  it("is free again after a body that cannot be decoded, without running the handler", async () => {
    const raw = new RawClient(limited.server.address, credentials.createInsecure());
    try {
      const ended = await new Promise<{ code: GrpcStatus; details: string }>((resolve) => {
        const same = (bytes: Buffer) => bytes;
        raw.makeUnaryRequest(
          "/shopmesh.echo.v1.EchoService/Echo",
          same,
          same,
          Buffer.from([0xff, 0xfe]),
          { deadline: Date.now() + 10_000 },
          (error: ServiceError | null) =>
            resolve(error ? { code: error.code, details: error.details } : { code: GrpcStatus.OK, details: "" }),
        );
      });
      expect(ended.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      await vi.waitFor(() => expect(running()).toBe(0), { timeout: 5_000 });
    } finally {
      raw.close();
    }
  });

  it("holds no slot for a request that has not arrived whole, and gives it to one that has", async () => {
    const session = connect(`http://${limited.server.address}`);
    const send = echoSender(session);
    try {
      // Sent first on the same connection, so the server has their headers and messages before the whole one.
      const unfinished = ["never-ends-1", "never-ends-2", "never-ends-3"].map((message) => send(message, false));
      const status = await streamStatus(send("whole", true));
      expect(status.code).toBe(GrpcStatus.OK);
      expect(limited.echo.started).toContain("whole");
      expect(running()).toBe(0);
      for (const stream of unfinished) stream.close();
    } finally {
      // Not close(): it would wait for the streams that never end.
      session.destroy();
    }
  });

  it("stays taken past the deadline while the handler still runs, and is free once it returns", async () => {
    const late = await settle(limited.client.echo({ message: "block-late" }, { timeoutMs: 200 }));
    expect(asConnectError(late.error).code).toBe(Code.DeadlineExceeded);
    // The handler ignores its deadline and still uses the process: it still counts.
    expect(running()).toBe(1);
    const refused = await settle(limited.client.echo({ message: "while the late one runs" }));
    expect(asConnectError(refused.error).code).toBe(Code.ResourceExhausted);
    limited.echo.release("block-late");
    await vi.waitFor(() => expect(running()).toBe(0), { timeout: 5_000 });
    expect((await limited.client.echo({ message: "after" })).message).toBe("after");
  });

  it("is free again when a client cancels a handler that ignores it, once the handler returns", async () => {
    const controller = new AbortController();
    const call = settle(limited.client.echo({ message: "block-cancelled" }, { signal: controller.signal }));
    await limited.echo.running("block-cancelled");
    controller.abort();
    expect(asConnectError((await call).error).code).toBe(Code.Canceled);
    expect(running()).toBe(1);
    limited.echo.release("block-cancelled");
    await vi.waitFor(() => expect(running()).toBe(0), { timeout: 5_000 });
  });
});

describe("admission control, requests that never finish arriving", () => {
  let limited: Limited;

  beforeAll(async () => {
    // Slots and queue together: at most 2 calls still arriving are kept.
    limited = await startLimited({ maxCallsInFlight: 1, maxCallsQueued: 1, maxQueueWaitMs: 300 });
  });

  afterAll(() => stopLimited(limited));

  it("keeps no more of them than the server holds calls, cutting the oldest, while whole requests are answered", async () => {
    const session = connect(`http://${limited.server.address}`);
    const send = echoSender(session);
    try {
      const unfinished = [1, 2, 3, 4].map((n) => send(`never-ends-${n}`, false));
      const seen = unfinished.map((stream) => {
        const events = { answered: false, closed: false };
        stream.on("response", () => (events.answered = true));
        stream.on("close", () => (events.closed = true));
        return events;
      });
      const sentAt = performance.now();
      const cut = async (stream: (typeof unfinished)[number]) => {
        const closed = once(stream, "close");
        const status = await streamStatus(stream);
        // Reset by the server (this client never ends its side), so that nothing of it is kept.
        await closed;
        return status;
      };
      const [first, second] = await Promise.all(unfinished.slice(0, 2).map(cut));
      // Cut only once they have had their time to arrive.
      expect(performance.now() - sentAt).toBeGreaterThanOrEqual(arrivalGraceMs - 5);
      for (const status of [first, second]) {
        expect(status!.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
        expect(status!.message).toMatch(
          /^request not complete after \d+ ms while \d+ others were also arriving \(this server keeps at most 2\); send the whole request at once$/,
        );
      }
      expect(seen.slice(2)).toEqual([
        { answered: false, closed: false },
        { answered: false, closed: false },
      ]);

      // A whole request arriving now makes one too many: the oldest still arriving gives way to it.
      const third = cut(unfinished[2]!);
      expect((await streamStatus(send("whole", true))).code).toBe(GrpcStatus.OK);
      expect((await third).code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
      expect(seen[3]).toEqual({ answered: false, closed: false });
      expect(limited.echo.started.filter((message) => message.startsWith("never-ends"))).toEqual([]);
      expect(limited.server.admission?.running).toBe(0);
    } finally {
      // Not close(): it would wait for the stream that never ends.
      session.destroy();
    }
  });

  it("counts server-streaming and health requests among them, though neither takes a slot", async () => {
    const session = connect(`http://${limited.server.address}`);
    const send = rawSender(session);
    const stream = toBinary(
      EchoStreamRequestSchema,
      create(EchoStreamRequestSchema, { message: "stream-never-ends", count: 1 }),
    );
    try {
      const unfinished = [
        send("/shopmesh.echo.v1.EchoService/EchoStream", stream, false),
        send("/grpc.health.v1.Health/Check", new Uint8Array(0), false),
        send("/grpc.health.v1.Health/Watch", new Uint8Array(0), false),
        send("/shopmesh.echo.v1.EchoService/EchoStream", stream, false),
      ];
      const statuses = await Promise.all(unfinished.slice(0, 2).map((call) => streamStatus(call)));
      expect(statuses.map((status) => status!.code)).toEqual([
        GrpcStatus.RESOURCE_EXHAUSTED,
        GrpcStatus.RESOURCE_EXHAUSTED,
      ]);
      expect(statuses[0]!.message).toMatch(/^request not complete after \d+ ms/);
      // A whole health check is answered at once, and pushes out the oldest still arriving: the Watch.
      const watch = streamStatus(unfinished[2]!);
      expect((await limited.health.check({})).status).toBe(ServingStatus.SERVING);
      expect((await watch).code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    } finally {
      session.destroy();
    }
  });
});

describe("admission control, the time a call waited", () => {
  it("tells the handler how long its call waited for a slot, and the server how soon it refused", async () => {
    const waited: number[] = [];
    const blocked: (() => void)[] = [];
    const impl: ServiceImpl<typeof EchoService> = {
      async echo(request, context) {
        waited.push(admissionWaitMs(context));
        if (request.message === "block") await new Promise<void>((resolve) => blocked.push(resolve));
        return { message: request.message };
      },
      async *echoStream() {},
    };
    const server = await startServer({
      config: {
        host: "127.0.0.1",
        port: 0,
        shutdownDelayMs: 0,
        shutdownGraceMs: 2_000,
        maxRequestBytes: 1024 * 1024,
        admission: { maxCallsInFlight: 1, maxCallsQueued: 1, maxQueueWaitMs: 5_000 },
      },
      logger: createLogger("admission-test", "silent"),
      services: [hosted(EchoService, impl)],
    });
    const transport = createTransport({ target: server.address });
    try {
      const client = createClient(EchoService, transport);
      await client.echo({ message: "warm-up" });
      const first = client.echo({ message: "block" });
      await vi.waitFor(() => expect(blocked).toHaveLength(1), { timeout: 5_000 });
      const second = client.echo({ message: "second" });
      await vi.waitFor(() => expect(server.admission?.waiting).toBe(1), { timeout: 5_000 });
      expect(asConnectError((await settle(client.echo({ message: "third" }))).error).code).toBe(Code.ResourceExhausted);
      await new Promise((resolve) => setTimeout(resolve, 100));
      blocked[0]!();
      await Promise.all([first, second]);
      expect(waited.slice(0, 2)).toEqual([0, 0]);
      expect(waited[2]).toBeGreaterThanOrEqual(90);
      expect(server.admission?.refusals.count).toBe(1);
      expect(server.admission?.refusals.quantileMs(1)).toBeLessThanOrEqual(10);
    } finally {
      transport.close();
      await server.stop();
    }
  });
});
