// A reader that stops reading an event stream costs the server a bounded
// amount of memory, however many events pile up behind it: EventLog.follow
// reads one batch from SQLite at a time, and the host takes the next message
// only when grpc-js has flushed the previous ones, which HTTP/2 flow control
// stops when the reader's window is full. Real gRPC over loopback, a real
// SQLite file, a raw grpc-js client.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { Client, credentials, type ClientReadableStream } from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger, EventLog, hosted, startServer, type RunningServer } from "@shopmesh/chassis";
import { methodPath } from "@shopmesh/sdk/internal";
import {
  ProductEventSchema,
  ProductsService,
  StreamEventsRequestSchema,
  StreamEventsResponseSchema,
  type StreamEventsRequest,
  type StreamEventsResponse,
} from "@shopmesh/sdk/products/v1";

// The outbox table as the services' migrations make it: created, then given its trace context columns.
const outboxSql = ["0001_outbox.sql", "0002_outbox_trace_context.sql"]
  .map((file) => readFileSync(fileURLToPath(new URL(`../../products/drizzle/${file}`, import.meta.url)), "utf8"))
  .join("\n");

/** Events read from SQLite at a time (EventLog's default). */
const batchSize = 64;
/**
 * The reader's HTTP/2 stream window: how many bytes the server may send
 * before the reader acknowledges them by reading. 65 535 is the HTTP/2 and
 * grpc-js default; set explicitly so that the bound below holds by
 * construction, not by accident of a default.
 */
const windowBytes = 65_535;
/** Events written while the reader does not read. */
const total = 20_000;
const description = "x".repeat(1_000);

let dataDir: string;
let sqlite: Database.Database;
let log: EventLog<typeof ProductEventSchema>;
let server: RunningServer;
let client: Client;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "shopmesh-backpressure-"));
  sqlite = new Database(join(dataDir, "events.sqlite"));
  sqlite.pragma("journal_mode = WAL");
  sqlite.exec(outboxSql);
  log = new EventLog(sqlite, ProductEventSchema, { batchSize, heartbeatMs: 60_000 });
  server = await startServer({
    config: { host: "127.0.0.1", port: 0, shutdownDelayMs: 0, shutdownGraceMs: 500, maxRequestBytes: 1024 * 1024 },
    logger: createLogger("backpressure-test", "silent"),
    services: [hosted(ProductsService, eventsOnly(log))],
  });
  client = new Client(server.address, credentials.createInsecure(), { "grpc-node.flow_control_window": windowBytes });
});

afterAll(async () => {
  client?.close();
  await server?.stop();
  sqlite?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/**
 * ProductsService whose StreamEvents follows `events` as the services' handler
 * does, without its auth check (this server has no auth interceptor); nothing
 * else is served.
 */
function eventsOnly(events: EventLog<typeof ProductEventSchema>): ServiceImpl<typeof ProductsService> {
  const unimplemented = () => {
    throw new ConnectError("not in this test", Code.Unimplemented);
  };
  return {
    createProduct: unimplemented,
    updateProduct: unimplemented,
    getProduct: unimplemented,
    listProducts: unimplemented,
    batchGetProducts: unimplemented,
    streamEvents: (request, context) => events.follow(request.afterSequence, context.signal),
  };
}

function appendEvents(from: number, count: number): void {
  sqlite.transaction(() => {
    for (let i = from; i < from + count; i++) {
      log.append({
        kind: { case: "productCreated", value: { product: { id: `p-${i}`, name: `product ${i}`, description } } },
      });
    }
  })();
}

/**
 * Opens StreamEvents, takes the first message (the heartbeat) and stops
 * reading. (It takes one first because grpc-js's client reads a call that
 * was never read at all into memory unbounded: it pauses its HTTP/2 stream
 * only once it has handed a message to a reader who asked for one.)
 * `resume()` reads on; `received` holds what arrived.
 */
async function openPaused(afterSequence: bigint) {
  const method = ProductsService.method.streamEvents;
  const call: ClientReadableStream<StreamEventsResponse> = client.makeServerStreamRequest(
    methodPath(method),
    (value: StreamEventsRequest) => Buffer.from(toBinary(StreamEventsRequestSchema, value)),
    (bytes: Buffer) => fromBinary(StreamEventsResponseSchema, bytes),
    create(StreamEventsRequestSchema, { afterSequence }),
  );
  const received: StreamEventsResponse[] = [];
  let wanted = 1;
  let reached: (() => void) | undefined;
  let failed: ((error: unknown) => void) | undefined;
  call.on("data", (message: StreamEventsResponse) => {
    received.push(message);
    if (received.length === 1) call.pause();
    if (received.length >= wanted) reached?.();
  });
  call.on("error", (error) => failed?.(error));
  const until = (count: number) =>
    new Promise<void>((resolve, reject) => {
      wanted = count;
      reached = resolve;
      failed = reject;
      if (received.length >= count) resolve();
    });
  await until(1);
  return {
    call,
    received,
    /** Reads on until `count` messages have arrived. */
    resume(count: number): Promise<void> {
      const arrived = until(count);
      call.resume();
      return arrived;
    },
  };
}

/**
 * Waits until the server stops reading: rowsRead unchanged for 300 ms. What
 * is shown here is the absence of progress, which only an interval can show;
 * a server that kept reading would keep changing rowsRead (up to `total`)
 * and be caught by the bound below.
 */
async function settledRowsRead(): Promise<number> {
  const deadline = Date.now() + 10_000;
  let last = -1;
  let stableSince = Date.now();
  while (Date.now() < deadline) {
    const now = log.outbox.rowsRead;
    if (now !== last) {
      last = now;
      stableSince = Date.now();
    } else if (Date.now() - stableSince >= 300) {
      return now;
    }
    await sleep(20);
  }
  throw new Error(`the server never stopped reading: rowsRead is ${log.outbox.rowsRead}`);
}

describe("StreamEvents to a reader that stops reading", () => {
  it("reads a bounded number of events while the reader is paused, then delivers all of them in order", async () => {
    // One event on the wire: the response message plus gRPC's 5-byte frame header.
    const sample = create(StreamEventsResponseSchema, {
      event: {
        sequence: 19_999n,
        kind: { case: "productCreated", value: { product: { id: "p-19999", name: "product 19999", description } } },
      },
      headSequence: 20_000n,
    });
    const wireBytes = toBinary(StreamEventsResponseSchema, sample).length + 5;
    const windowEvents = Math.ceil(windowBytes / wireBytes);
    // Messages the host may have taken from follow() that the test has not
    // received, at most:
    // - the server call's writable buffer (grpc-js: an object-mode Writable,
    //   highWaterMark 16) and the one message HTTP/2 holds for sending;
    // - what flow control lets onto the wire: one stream window, plus at
    //   most one more for what the reader's side has taken off the socket
    //   before it stops acknowledging (Node http2's 16 KiB readable buffer
    //   and the DATA frame grpc-js was decoding, 16 KiB at most);
    // - the reader's object-mode readable buffer (16).
    const inFlight = 16 + 1 + 2 * windowEvents + 16;
    // follow() reads the next batch only when the host has taken the last
    // one, so it has read at most one batch beyond what the host took. A
    // server that read ahead of demand would read all of them.
    const bound = inFlight + batchSize;
    expect(bound).toBeLessThan(total / 10);

    appendEvents(0, total / 2);
    const stream = await openPaused(0n);
    try {
      const pausedOnReplay = await settledRowsRead();
      // The server read (a batch at least), and then stopped; the reader took only the heartbeat.
      expect(stream.received).toHaveLength(1);
      expect(pausedOnReplay).toBeGreaterThanOrEqual(batchSize);
      expect(pausedOnReplay).toBeLessThanOrEqual(bound);

      // More events commit while the reader still does not read: none of them is read.
      appendEvents(total / 2, total / 2);
      const pausedLive = await settledRowsRead();
      expect(pausedLive).toBeLessThanOrEqual(bound);

      // Reading again delivers the head first, then every event once, in order.
      await stream.resume(1 + total);
      const [first, ...rest] = stream.received;
      expect(first?.event).toBeUndefined();
      expect(first?.headSequence).toBe(BigInt(total / 2));
      const events = rest.flatMap((message) => (message.event ? [message.event] : []));
      expect(events).toHaveLength(total);
      expect(events.every((event, i) => event.sequence === BigInt(i + 1))).toBe(true);
      const names = events.map((event) =>
        event.kind.case === "productCreated" ? event.kind.value.product?.name : undefined,
      );
      expect(names.every((name, i) => name === `product ${i}`)).toBe(true);
      // Each row was read from SQLite exactly once.
      expect(log.outbox.rowsRead).toBe(total);
    } finally {
      stream.call.cancel();
    }
  });
});
