// The outbox and the event log in one process, on an in-memory SQLite
// database with the outbox table exactly as the services' migration creates
// it: sequence numbering, transactions, and follow()'s replay, live delivery,
// heartbeats and demand-driven reading, the caps on open streams, and what a
// stream leaves behind when it ends.
import { getEventListeners } from "node:events";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { EventLog, readEventStreamOptions, type EventStreamMessage, type EventStreamOptions } from "@shopmesh/chassis";
import { ProductEventSchema, ProductSchema } from "@shopmesh/sdk/products/v1";

// The outbox table as the services' migrations make it: created, then given its trace context columns.
const outboxSql = ["0001_outbox.sql", "0002_outbox_trace_context.sql"]
  .map((file) => readFileSync(fileURLToPath(new URL(`../../products/drizzle/${file}`, import.meta.url)), "utf8"))
  .join("\n");

const databases: Database.Database[] = [];
const controllers: AbortController[] = [];
afterEach(() => {
  for (const controller of controllers.splice(0)) controller.abort();
  for (const db of databases.splice(0)) db.close();
});

function openLog(options: EventStreamOptions = {}) {
  const sqlite = new Database(":memory:");
  databases.push(sqlite);
  sqlite.exec(outboxSql);
  return { sqlite, log: new EventLog(sqlite, ProductEventSchema, options) };
}

function created(name: string) {
  return { kind: { case: "productCreated" as const, value: { product: { id: `id-${name}`, name } } } };
}

function signal(): AbortSignal {
  const controller = new AbortController();
  controllers.push(controller);
  return controller.signal;
}

type Message = EventStreamMessage<typeof ProductEventSchema>;

/** Takes the next message, failing the test instead of hanging when none comes. */
async function next(stream: AsyncGenerator<Message>, withinMs = 2_000): Promise<Message> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no message within ${withinMs} ms`)), withinMs);
  });
  try {
    const result = await Promise.race([stream.next(), timeout]);
    if (result.done) throw new Error("the stream ended");
    return result.value;
  } finally {
    clearTimeout(timer);
  }
}

const nameOf = (message: Message) =>
  message.event?.kind.case === "productCreated" ? message.event.kind.value.product?.name : undefined;

describe("EventLog.append", () => {
  it("numbers events 1, 2, 3 and keeps the envelope with its commit time", () => {
    const { sqlite, log } = openLog();
    expect(log.append(created("a"), 1_000)).toBe(1);
    expect(log.append(created("b"), 2_000)).toBe(2);
    expect(
      log.append({ kind: { case: "productChanged", value: { product: { id: "id-a", name: "A2" } } } }, 3_000),
    ).toBe(3);
    expect(log.outbox.head()).toBe(3);

    const rows = sqlite.prepare("SELECT sequence, kind, occurred_at AS occurredAt FROM outbox ORDER BY sequence").all();
    expect(rows).toEqual([
      { sequence: 1, kind: "productCreated", occurredAt: 1_000 },
      { sequence: 2, kind: "productCreated", occurredAt: 2_000 },
      { sequence: 3, kind: "productChanged", occurredAt: 3_000 },
    ]);
    const decoded = log.outbox.after(0, 10).map((entry) => log.decode(entry));
    expect(decoded.map((event) => event.sequence)).toEqual([1n, 2n, 3n]);
    expect(decoded.map((event) => timestampMs(event.occurTime!))).toEqual([1_000, 2_000, 3_000]);
    expect(decoded[2]!.kind).toEqual({
      case: "productChanged",
      value: expect.objectContaining({ product: expect.objectContaining({ id: "id-a", name: "A2" }) }),
    });
  });

  it("writes nothing when the surrounding transaction rolls back, and leaves no gap", () => {
    const { sqlite, log } = openLog();
    log.append(created("a"));
    expect(() =>
      sqlite.transaction(() => {
        log.append(created("lost"));
        throw new Error("the change failed");
      })(),
    ).toThrow("the change failed");
    expect(log.outbox.head()).toBe(1);
    expect(log.append(created("b"))).toBe(2);
  });

  it("never reuses a sequence number, even after the newest events are deleted", () => {
    const { sqlite, log } = openLog();
    for (const name of ["a", "b", "c"]) log.append(created(name));
    sqlite.exec("DELETE FROM outbox WHERE sequence >= 2");
    expect(log.append(created("d"))).toBe(4);
  });

  it("refuses a message that is not an event envelope", () => {
    const sqlite = new Database(":memory:");
    databases.push(sqlite);
    sqlite.exec(outboxSql);
    expect(() => new EventLog(sqlite, ProductSchema)).toThrow(/not an event envelope/);
  });
});

describe("Outbox.nextAppend", () => {
  it("resolves true after an append commits, false after the timeout or on abort", async () => {
    const { log } = openLog();
    const waiting = log.outbox.nextAppend(5_000, signal());
    log.append(created("a"));
    expect(await waiting).toBe(true);

    const started = performance.now();
    expect(await log.outbox.nextAppend(30, signal())).toBe(false);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);

    const controller = new AbortController();
    const aborted = log.outbox.nextAppend(5_000, controller.signal);
    controller.abort();
    expect(await aborted).toBe(false);
  });
});

describe("EventLog.follow", () => {
  it("sends the head first, replays what follows after_sequence, then delivers new events live", async () => {
    const { log } = openLog({ heartbeatMs: 60_000 });
    for (const name of ["a", "b", "c", "d"]) log.append(created(name));
    const stream = log.follow(2n, signal());

    expect(await next(stream)).toEqual({ headSequence: 4n });
    const replayed = [await next(stream), await next(stream)];
    expect(replayed.map((m) => [m.event?.sequence, nameOf(m), m.headSequence])).toEqual([
      [3n, "c", 4n],
      [4n, "d", 4n],
    ]);

    const live = next(stream);
    log.append(created("e"));
    const message = await live;
    expect([message.event?.sequence, nameOf(message), message.headSequence]).toEqual([5n, "e", 5n]);
  });

  it("replays nothing when after_sequence is the head, and an empty log starts at head 0", async () => {
    const { log } = openLog({ heartbeatMs: 60_000 });
    expect(await next(log.follow(0, signal()))).toEqual({ headSequence: 0n });
    log.append(created("a"));
    const stream = log.follow(1, signal());
    expect(await next(stream)).toEqual({ headSequence: 1n });
    const live = next(stream);
    log.append(created("b"));
    expect((await live).event?.sequence).toBe(2n);
  });

  it("answers OUT_OF_RANGE when after_sequence is beyond the head", async () => {
    const { log } = openLog();
    log.append(created("a"));
    const error = await log
      .follow(2n, signal())
      .next()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.OutOfRange);
    const largest = await log
      .follow(2n ** 64n - 1n, signal())
      .next()
      .then(
        () => undefined,
        (e: unknown) => e as ConnectError,
      );
    expect(largest?.rawMessage).toMatch(/^after_sequence 18446744073709551615 is beyond the newest event 1:/);
  });

  it("sends a heartbeat with the head when nothing happens for heartbeatMs, and not before", async () => {
    const { log } = openLog({ heartbeatMs: 80 });
    log.append(created("a"));
    const stream = log.follow(1, signal());
    expect(await next(stream)).toEqual({ headSequence: 1n });
    const started = performance.now();
    expect(await next(stream)).toEqual({ headSequence: 1n });
    expect(await next(stream)).toEqual({ headSequence: 1n });
    // Two idle periods: a loop that spun instead of waiting would be much faster.
    expect(performance.now() - started).toBeGreaterThanOrEqual(2 * 80 - 10);
  });

  it("wakes every follower on one append", async () => {
    const { log } = openLog({ heartbeatMs: 60_000 });
    const streams = [log.follow(0, signal()), log.follow(0, signal()), log.follow(0, signal())];
    for (const stream of streams) await next(stream);
    const pending = streams.map((stream) => next(stream));
    log.append(created("a"));
    for (const message of await Promise.all(pending)) expect(message.event?.sequence).toBe(1n);
  });

  it("ends when its signal aborts, also while waiting for the next append", async () => {
    const { log } = openLog({ heartbeatMs: 60_000 });
    const controller = new AbortController();
    const stream = log.follow(0, controller.signal);
    await next(stream);
    const waiting = stream.next();
    controller.abort();
    expect(await waiting).toEqual({ done: true, value: undefined });
  });

  it("reads one batch at a time, only when the previous one has been taken", async () => {
    const { log } = openLog({ batchSize: 10, heartbeatMs: 60_000 });
    for (let i = 0; i < 100; i++) log.append(created(`p${i}`));
    const stream = log.follow(0, signal());
    await next(stream);
    expect(log.outbox.rowsRead).toBe(0);
    await next(stream);
    expect(log.outbox.rowsRead).toBe(10);
    for (let i = 1; i < 10; i++) await next(stream);
    expect(log.outbox.rowsRead).toBe(10);
    expect((await next(stream)).event?.sequence).toBe(11n);
    expect(log.outbox.rowsRead).toBe(20);
  });

  it("delivers every event once and in order while appends interleave with a replay", async () => {
    const { log } = openLog({ batchSize: 7, heartbeatMs: 60_000 });
    for (let i = 0; i < 50; i++) log.append(created(`p${i}`));
    const stream = log.follow(0, signal());
    await next(stream);
    const sequences: bigint[] = [];
    let extra = 0;
    while (sequences.length < 70) {
      const message = await next(stream);
      if (message.event) sequences.push(message.event.sequence);
      // A new event lands after every third one taken, between and within batches.
      if (sequences.length % 3 === 0 && extra < 20) {
        log.append(created(`q${extra++}`));
      }
    }
    expect(log.outbox.head()).toBe(70);
    expect(sequences).toEqual(Array.from({ length: 70 }, (_, i) => BigInt(i + 1)));
  });
});

/** What a follow() left ended with: its error, or undefined when it ended cleanly. */
async function endOf(stream: AsyncGenerator<Message>): Promise<unknown> {
  try {
    for (;;) if ((await stream.next()).done) return undefined;
  } catch (error) {
    return error;
  }
}

/** The ConnectError a stream's first message fails with. */
async function refusal(stream: AsyncGenerator<Message>): Promise<ConnectError> {
  const error = await stream.next().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConnectError);
  return error as ConnectError;
}

/**
 * Streams a signal has linked to it with AbortSignal.any. Node keeps them in
 * an internal set of the source signal and, on Node 20, never removes them:
 * a server-wide signal linked to every stream would grow with each one.
 */
function dependantsOf(source: AbortSignal): number {
  const key = Object.getOwnPropertySymbols(source).find((symbol) => symbol.description === "kDependantSignals");
  const dependants =
    key === undefined ? undefined : (source as unknown as Record<symbol, Set<unknown> | undefined>)[key];
  return dependants?.size ?? 0;
}

const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;

describe("EventLog.follow for a caller: open streams are capped", () => {
  it("refuses a caller's stream past its cap with RESOURCE_EXHAUSTED, and serves another caller", async () => {
    const { log } = openLog({ heartbeatMs: 60_000, maxStreams: 10, maxStreamsPerCaller: 2 });
    for (let i = 0; i < 2; i++)
      expect(await next(log.follow(0, signal(), { caller: "reader-a" }))).toEqual({ headSequence: 0n });
    const refused = await refusal(log.follow(0, signal(), { caller: "reader-a" }));
    expect(refused.code).toBe(Code.ResourceExhausted);
    expect(refused.rawMessage).toBe("too many event streams for this caller (limit 2)");
    expect(await next(log.follow(0, signal(), { caller: "reader-b" }))).toEqual({ headSequence: 0n });
    expect([log.slots.open, log.slots.openFor("reader-a"), log.slots.openFor("reader-b")]).toEqual([3, 2, 1]);
  });

  it("refuses any stream past the total cap, whoever asks", async () => {
    const { log } = openLog({ heartbeatMs: 60_000, maxStreams: 3, maxStreamsPerCaller: 2 });
    for (const caller of ["a", "a", "b"]) await next(log.follow(0, signal(), { caller }));
    const refused = await refusal(log.follow(0, signal(), { caller: "c" }));
    expect(refused.code).toBe(Code.ResourceExhausted);
    expect(refused.rawMessage).toBe("too many event streams on this server (limit 3)");
    // An in-process reader (the NATS relay) takes no slot.
    expect(await next(log.follow(0, signal()))).toEqual({ headSequence: 0n });
    expect(log.slots.open).toBe(3);
  });

  it("gives the slot back however the stream ends: cancelled, failed, returned early, or the server stopping", async () => {
    const { log } = openLog({ heartbeatMs: 60_000, maxStreams: 10, maxStreamsPerCaller: 1 });
    log.append(created("a"));

    // Cancelled while waiting for the next append.
    const cancel = new AbortController();
    const cancelled = log.follow(1, cancel.signal, { caller: "r" });
    await next(cancelled);
    const ending = endOf(cancelled);
    expect(log.slots.openFor("r")).toBe(1);
    cancel.abort();
    expect(await ending).toBeUndefined();
    expect(log.slots.open).toBe(0);

    // Failed: after_sequence beyond the head.
    const failed = await refusal(log.follow(5, signal(), { caller: "r" }));
    expect(failed.code).toBe(Code.OutOfRange);
    expect(log.slots.open).toBe(0);

    // Returned early by its consumer, in the middle of a replay.
    const returned = log.follow(0, signal(), { caller: "r" });
    await next(returned);
    await next(returned);
    expect(log.slots.open).toBe(1);
    await returned.return(undefined);
    expect(log.slots.open).toBe(0);

    // The server stopping: UNAVAILABLE, and the slot is back.
    const stop = new AbortController();
    const stopped = log.follow(1, signal(), { caller: "r", stopping: stop.signal });
    await next(stopped);
    const stopEnding = endOf(stopped);
    stop.abort();
    expect(((await stopEnding) as ConnectError).code).toBe(Code.Unavailable);
    expect(log.slots.open).toBe(0);

    // After all of that, the caller's one slot is free.
    expect(await next(log.follow(1, signal(), { caller: "r" }))).toEqual({ headSequence: 1n });
  });

  it("leaves no listener, timer or registration behind when cancelled streams end", async () => {
    const { log } = openLog({ heartbeatMs: 60_000, maxStreams: 100, maxStreamsPerCaller: 100 });
    const stopping = new AbortController();
    const count = 50;
    const timersBefore = timers();
    const cancels = Array.from({ length: count }, () => new AbortController());
    const streams = cancels.map((cancel) =>
      log.follow(0, cancel.signal, { caller: "reader", stopping: stopping.signal }),
    );
    for (const stream of streams) await next(stream);
    // Every stream now waits for the next append: a waiter, a heartbeat timer and a slot each.
    const endings = streams.map((stream) => endOf(stream));
    expect(log.outbox.waiting).toBe(count);
    expect(timers() - timersBefore).toBe(count);
    expect(log.slots.open).toBe(count);
    // One listener on the server-wide signal for all of them, not one each (Node warns past ten).
    expect(getEventListeners(stopping.signal, "abort")).toHaveLength(1);

    for (const cancel of cancels) cancel.abort();
    for (const ending of await Promise.all(endings)) expect(ending).toBeUndefined();

    expect(log.outbox.waiting).toBe(0);
    expect(timers()).toBe(timersBefore);
    expect(log.slots.open).toBe(0);
    // The server-wide stopping signal outlives every stream: it must hold none of them.
    expect(getEventListeners(stopping.signal, "abort")).toHaveLength(0);
    expect(dependantsOf(stopping.signal)).toBe(0);
    for (const cancel of cancels) expect(getEventListeners(cancel.signal, "abort")).toHaveLength(0);
  });
});

describe("readEventStreamOptions", () => {
  it("reads EVENTS_BATCH and EVENTS_HEARTBEAT, with defaults", () => {
    expect(readEventStreamOptions({})).toEqual({
      batchSize: 64,
      heartbeatMs: 2_000,
      maxStreams: 64,
      maxStreamsPerCaller: 4,
      readers: ["user-orders"],
    });
    expect(readEventStreamOptions({ EVENTS_BATCH: "32", EVENTS_HEARTBEAT: "250ms" })).toMatchObject({
      batchSize: 32,
      heartbeatMs: 250,
    });
    expect(() => readEventStreamOptions({ EVENTS_BATCH: "0" })).toThrow(/EVENTS_BATCH/);
  });

  it("reads EVENTS_READERS, the services whose certificates may read the streams", () => {
    expect(readEventStreamOptions({ EVENTS_READERS: "user-orders, search" }).readers).toEqual([
      "user-orders",
      "search",
    ]);
    expect(() => readEventStreamOptions({ EVENTS_READERS: "user-orders,,Search" })).toThrow(/EVENTS_READERS/);
  });

  it("reads EVENTS_MAX_STREAMS and EVENTS_MAX_STREAMS_PER_CALLER, and refuses caps below 1", () => {
    expect(readEventStreamOptions({ EVENTS_MAX_STREAMS: "1000", EVENTS_MAX_STREAMS_PER_CALLER: "16" })).toMatchObject({
      maxStreams: 1000,
      maxStreamsPerCaller: 16,
    });
    for (const [variable, value] of [
      ["EVENTS_MAX_STREAMS", "0"],
      ["EVENTS_MAX_STREAMS", "many"],
      ["EVENTS_MAX_STREAMS_PER_CALLER", "0"],
      ["EVENTS_MAX_STREAMS_PER_CALLER", "-1"],
    ] as const) {
      expect(() => readEventStreamOptions({ [variable]: value }), `${variable}=${value}`).toThrow(new RegExp(variable));
    }
  });

  it("refuses a heartbeat interval that would make idle streams spin", () => {
    // 0 ms, and anything past setTimeout's limit (Node fires that after 1 ms).
    for (const value of ["0", "0ms", "5ms", "700h"]) {
      expect(() => readEventStreamOptions({ EVENTS_HEARTBEAT: value }), value).toThrow(/EVENTS_HEARTBEAT/);
    }
    expect(readEventStreamOptions({ EVENTS_HEARTBEAT: "24h" }).heartbeatMs).toBe(86_400_000);
  });
});
