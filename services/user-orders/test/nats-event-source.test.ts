// The JetStream path end to end: users, products and orders as real processes
// with SQLite files in a temporary directory and EVENTS_RELAY=nats, a real
// nats-server (CI's NATS_URL, or a private one), and the projection's NATS
// source reading what the relays published, checked against the services'
// own StreamEvents. Hand-made streams cover what the relays never produce
// (duplicates, gaps), and a private server the one that goes away.
import { create, toBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, natsEventNames, outboxSequenceHeader } from "@shopmesh/chassis";
import { setTraceContextHeaders } from "@shopmesh/chassis/jetstream";
import { OrderEventSchema } from "@shopmesh/sdk/orders/v1";
import { ProductEventSchema } from "@shopmesh/sdk/products/v1";
import { UserEventSchema } from "@shopmesh/sdk/users/v1";
import { connect, headers, StorageType, type NatsConnection } from "nats";
import { grpcEventSource, type EventSource, type SourceMessage } from "../src/projection/event-source.js";
import type { DependencyName } from "../src/dependencies.js";
import { readEventSourceConfig } from "../src/projection/event-source.js";
import { natsEventSource } from "../src/projection/nats-event-source.js";
import { adminToken, signUpCustomer, TestMesh } from "../../../test/support/mesh.js";
import {
  natsForTests,
  natsServer,
  spawnNatsServer,
  uniquePrefix,
  type TestNats,
} from "../../../test/support/nats-server.js";

// Without nats-server the JetStream tests are skipped (the settings tests run).
const natsMissing = natsServer().missing;
let nats: TestNats;
let client: NatsConnection;
let mesh: TestMesh;
let prefix: string;
const sources: EventSource[] = [];

beforeAll(async () => {
  if (natsMissing) return;
  nats = await natsForTests();
  client = await connect({ servers: nats.url });
  prefix = uniquePrefix("mesh");
  const relay = { EVENTS_RELAY: "nats", NATS_URL: nats.url, EVENTS_NATS_PREFIX: prefix };
  mesh = await TestMesh.start(["users", "products", "orders"], {
    users: { ...relay, PASSWORD_HASH_COST: "1024" },
    products: relay,
    orders: relay,
  });
  // Some of every kind of event: accounts, products created and changed, orders.
  const admin = await adminToken(mesh);
  const catalog = mesh.client("products", admin);
  const tea = (await catalog.createProduct({ name: "Tea", price: { currencyCode: "EUR", minorUnits: 450n } })).product!;
  const mug = (await catalog.createProduct({ name: "Mug", price: { currencyCode: "EUR", minorUnits: 1200n } }))
    .product!;
  await catalog.updateProduct({ productId: tea.id, price: { currencyCode: "EUR", minorUnits: 480n } });
  for (let i = 0; i < 5; i++) {
    const customer = await signUpCustomer(mesh, `nats-${i}`);
    await mesh.client("orders", customer.token).createOrder({
      requestId: `nats-order-${i}`,
      items: [{ productId: (i % 2 ? tea : mug).id, quantity: i + 1 }],
    });
  }
});

afterAll(async () => {
  for (const source of sources) source.close();
  await client?.close();
  await mesh?.stop();
  await nats?.stop();
});

function natsSource(
  options: { prefix?: string; url?: string; heartbeatMs?: number; batchSize?: number } = {},
): EventSource {
  const { url, ...rest } = options;
  const source = natsEventSource({ servers: [url ?? nats.url], prefix: options.prefix ?? prefix, ...rest });
  sources.push(source);
  return source;
}

/** The services' own StreamEvents, through the mesh's current addresses. */
function grpcSource(): EventSource {
  const source = grpcEventSource({
    // As user-orders reads them: with its certificate.
    clients: {
      users: mesh.client("users", undefined, "user-orders"),
      products: mesh.client("products", undefined, "user-orders"),
      orders: mesh.client("orders", undefined, "user-orders"),
    },
  });
  sources.push(source);
  return source;
}

/**
 * Everything `source` yields for `stream` after `after`, up to the event with
 * sequence `until`; fails after `timeoutMs` instead of hanging.
 */
async function readUntil<S extends DependencyName>(
  source: EventSource,
  stream: S,
  after: bigint,
  until: bigint,
  timeoutMs = 15_000,
) {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error(`no event ${until} on ${stream} within ${timeoutMs} ms`)),
    timeoutMs,
  );
  const messages: SourceMessage<S>[] = [];
  try {
    if (until > after) {
      for await (const message of source.open(stream, after, controller.signal)) {
        messages.push(message);
        if (message.event && message.event.sequence >= until) break;
      }
    }
  } finally {
    clearTimeout(timer);
  }
  if (controller.signal.aborted) throw controller.signal.reason;
  return { messages, events: messages.flatMap((m) => (m.event ? [m.event] : [])) };
}

/** Iterates by hand, failing when nothing comes within `withinMs`. */
function reader<S extends DependencyName>(source: EventSource, stream: S, after: bigint, signal: AbortSignal) {
  const iterator = source.open(stream, after, signal)[Symbol.asyncIterator]();
  return async (withinMs = 5_000): Promise<IteratorResult<SourceMessage<S>>> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`nothing from ${stream} within ${withinMs} ms`)), withinMs);
    });
    try {
      return await Promise.race([iterator.next(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/** The newest sequence a service itself reports for its stream. */
async function headOf(stream: DependencyName): Promise<bigint> {
  const controller = new AbortController();
  try {
    for await (const message of grpcSource().open(stream, 0n, controller.signal)) return message.headSequence;
    throw new Error("StreamEvents ended without a message");
  } finally {
    controller.abort();
  }
}

const sequences = (events: { sequence: bigint }[]) => events.map((e) => Number(e.sequence));
const oneTo = (n: number | bigint) => Array.from({ length: Number(n) }, (_, i) => i + 1);

/** A hand-made stream where a relay's would be, holding envelopes with the given outbox sequences. */
async function craftStream(
  nc: NatsConnection,
  outboxSequences: number[],
  storage = StorageType.Memory,
  traces: {
    /** The trace context headers of each message, by outbox sequence. */
    header?: Record<number, { traceparent: string; tracestate?: string }>;
    /** The trace context in each envelope, by outbox sequence. */
    envelope?: Record<number, { traceparent: string; tracestate?: string }>;
  } = {},
): Promise<string> {
  const craftedPrefix = uniquePrefix("crafted");
  const names = natsEventNames("users", craftedPrefix);
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: names.stream, subjects: [names.subject], storage });
  const js = nc.jetstream();
  for (const sequence of outboxSequences) {
    const header = headers();
    header.set(outboxSequenceHeader, String(sequence));
    setTraceContextHeaders(header, traces.header?.[sequence]);
    const event = create(UserEventSchema, {
      sequence: BigInt(sequence),
      kind: { case: "userRegistered", value: { user: { id: `user-${sequence}` } } },
      traceContext: traces.envelope?.[sequence],
    });
    await js.publish(names.subject, toBinary(UserEventSchema, event), { headers: header });
  }
  return craftedPrefix;
}

describe.skipIf(natsMissing)("the NATS event source over relayed streams", () => {
  it.each(["users", "products", "orders"] as const)(
    "yields %s's events as StreamEvents does: every sequence, in order, same envelopes",
    async (stream) => {
      const head = await headOf(stream);
      expect(head).toBeGreaterThanOrEqual(3n);
      const direct = await readUntil(grpcSource(), stream, 0n, head);
      const relayed = await readUntil(natsSource(), stream, 0n, head);

      expect(relayed.messages[0]!.event).toBeUndefined(); // the first message is a heartbeat, as with StreamEvents
      expect(sequences(relayed.events)).toEqual(oneTo(head));
      const bytes = (events: typeof direct.events) =>
        events.map((e) => Buffer.from(toBinary(schemaOf(stream), e as Message)));
      expect(bytes(relayed.events)).toEqual(bytes(direct.events));
      expect(relayed.messages.at(-1)!.headSequence).toBe(head);
    },
  );

  it("starts just after the sequence asked for", async () => {
    const head = await headOf("users");
    const { messages, events } = await readUntil(natsSource(), "users", 3n, head);
    expect(sequences(events)).toEqual(oneTo(head).slice(3));
    expect(messages[0]).toEqual({ headSequence: expect.any(BigInt) });
    expect(events[0]!.sequence).toBe(4n);
  });

  it("sends a caught-up reader heartbeats, then the next event as it is relayed", async () => {
    const head = await headOf("users");
    await readUntil(natsSource(), "users", 0n, head); // the relay has caught up
    const controller = new AbortController();
    try {
      const next = reader(natsSource({ heartbeatMs: 1000 }), "users", head, controller.signal);
      expect((await next()).value).toEqual({ headSequence: head });
      const started = Date.now();
      expect((await next()).value).toEqual({ headSequence: head });
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);

      await signUpCustomer(mesh, "late");
      let message = (await next()).value!;
      while (!message.event) message = (await next()).value!; // a heartbeat may come first
      expect(message.event.sequence).toBe(head + 1n);
      expect(message.headSequence).toBe(head + 1n);
    } finally {
      controller.abort();
    }
  });

  it("loses and duplicates nothing when the producer is killed and restarted", async () => {
    await Promise.all(Array.from({ length: 15 }, (_, i) => signUpCustomer(mesh, `burst-${i}`)));
    await mesh.processes.get("users")!.stop("SIGKILL");
    // Back, but cut off from NATS: these accounts reach the outbox only. Then killed again.
    await mesh.startService("users", { NATS_URL: "nats://127.0.0.1:9" });
    for (let i = 0; i < 4; i++) await signUpCustomer(mesh, `unrelayed-${i}`);
    await mesh.processes.get("users")!.stop("SIGKILL");
    // Back with NATS: the backlog goes out first, then what comes next.
    const restarted = await mesh.startService("users");
    for (let i = 0; i < 3; i++) await signUpCustomer(mesh, `after-${i}`);

    const head = await headOf("users");
    const { events } = await readUntil(natsSource(), "users", 0n, head);
    expect(sequences(events)).toEqual(oneTo(head));
    // Nothing was stored twice either: one message per event in the stream.
    const jsm = await client.jetstreamManager();
    const { state } = await jsm.streams.info(natsEventNames("users", prefix).stream);
    expect([state.messages, state.last_seq]).toEqual([Number(head), Number(head)]);
    expect(restarted.logs.find((line) => line.msg === "relaying events to NATS JetStream")).toMatchObject({
      stream: natsEventNames("users", prefix).stream,
    });
  });
});

describe.skipIf(natsMissing)("the NATS event source's checks", () => {
  it("skips what the reader already has and fails on a gap, naming the missing events", async () => {
    const crafted = await craftStream(client, [1, 2, 2, 3, 5]);
    const source = natsSource({ prefix: crafted });
    const seen: number[] = [];
    const reading = (async () => {
      for await (const message of source.open("users", 0n, new AbortController().signal)) {
        if (message.event) seen.push(Number(message.event.sequence));
      }
    })();
    await expect(reading).rejects.toThrow(/events 4\.\.4 are missing/);
    expect(seen).toEqual([1, 2, 3]);

    // Stream sequence 3 holds outbox sequence 2 again: asked for after 2, the source skips it.
    const after = await readUntil(source, "users", 2n, 3n);
    expect(sequences(after.events)).toEqual([3]);
  });

  it("gives each event the trace context of the write that produced it, from the W3C headers first", async () => {
    const parent = (span: string) => `00-4bf92f3577b34da6a3ce929d0e0e4736-${span.repeat(16)}-01`;
    const crafted = await craftStream(client, [1, 2, 3, 4], StorageType.Memory, {
      header: { 1: { traceparent: parent("a"), tracestate: "v=1" }, 3: { traceparent: parent("c") } },
      envelope: { 2: { traceparent: parent("b") }, 3: { traceparent: parent("d") } },
    });
    const { events } = await readUntil(natsSource({ prefix: crafted }), "users", 0n, 4n);
    expect(events.map((event) => [event.traceContext?.traceparent, event.traceContext?.tracestate])).toEqual([
      [parent("a"), "v=1"],
      [parent("b"), ""], // a relay that set no headers: the envelope's
      [parent("c"), ""], // the headers decide where both are
      [undefined, undefined], // a write that was not traced
    ]);
  });

  it("refuses a position beyond the stream's newest event, and a stream nobody relays", async () => {
    const crafted = await craftStream(client, [1, 2]);
    await expect(readUntil(natsSource({ prefix: crafted }), "users", 5n, 6n)).rejects.toThrow(
      /beyond the newest event 2/,
    );
    await expect(readUntil(natsSource({ prefix: uniquePrefix("nobody") }), "users", 0n, 1n)).rejects.toThrow(
      /does not exist/,
    );
  });

  it("sends a reader that stops reading one batch, and pulls the next only when it reads on", async () => {
    const crafted = await craftStream(client, oneTo(100));
    const controller = new AbortController();
    try {
      const next = reader(natsSource({ prefix: crafted, batchSize: 10 }), "users", 0n, controller.signal);
      expect((await next()).value).toEqual({ headSequence: 100n });
      expect((await next()).value).toMatchObject({ event: { sequence: 1n }, headSequence: 100n });

      const jsm = await client.jetstreamManager();
      const stream = natsEventNames("users", crafted).stream;
      const consumerInfo = async () => (await jsm.consumers.list(stream).next())[0]!;
      // Wait until the first batch has been delivered, then see that no pull is outstanding:
      // with none waiting, the server cannot send more until the reader asks.
      let info = await consumerInfo();
      for (const deadline = Date.now() + 5000; info.delivered.consumer_seq < 10 && Date.now() < deadline; ) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        info = await consumerInfo();
      }
      expect(info.delivered.consumer_seq).toBe(10);
      expect(info.num_waiting).toBe(0);
      expect(info.num_pending).toBe(90);

      for (let sequence = 2n; sequence <= 11n; sequence++) {
        expect((await next()).value?.event?.sequence).toBe(sequence);
      }
    } finally {
      controller.abort();
    }
  });

  it.each([
    // The server ends the waiting pull with "consumer deleted".
    ["while a pull waits for messages", false, /consumer deleted/],
    // Just after an idle heartbeat no pull is out: the next pull or the consumer check finds it missing.
    ["between pulls", true, /consumer deleted|consumer not found|consumer .* is gone/],
  ])("fails when its consumer is deleted %s", async (_, afterHeartbeat, error) => {
    const crafted = await craftStream(client, [1]);
    const controller = new AbortController();
    try {
      const next = reader(natsSource({ prefix: crafted, heartbeatMs: 1000 }), "users", 0n, controller.signal);
      await next(); // the first heartbeat
      expect((await next()).value?.event?.sequence).toBe(1n);
      if (afterHeartbeat) expect((await next()).value).toEqual({ headSequence: 1n });
      const jsm = await client.jetstreamManager();
      const stream = natsEventNames("users", crafted).stream;
      const [consumer] = await jsm.consumers.list(stream).next();
      await jsm.consumers.delete(stream, consumer!.name);
      await expect(next()).rejects.toThrow(error);
    } finally {
      controller.abort();
    }
  });

  it("throws when the NATS connection is lost, connects again on the next open, and ends quietly when aborted", async () => {
    const server = await spawnNatsServer();
    try {
      const nc = await connect({ servers: server.url });
      const crafted = await craftStream(nc, [1, 2], StorageType.File);
      await nc.close();
      const source = natsSource({ url: server.url, prefix: crafted });

      const aborted = new AbortController();
      const quiet = reader(source, "users", 0n, aborted.signal);
      expect((await quiet()).value).toEqual({ headSequence: 2n });
      aborted.abort();
      expect((await quiet()).done).toBe(true);

      const next = reader(source, "users", 0n, new AbortController().signal);
      expect((await next()).value).toEqual({ headSequence: 2n });
      expect((await next()).value?.event?.sequence).toBe(1n);
      expect((await next()).value?.event?.sequence).toBe(2n);
      await server.kill("SIGKILL");
      await expect(next()).rejects.toThrow();

      await server.restart();
      const again = reader(source, "users", 1n, new AbortController().signal);
      expect((await again()).value).toEqual({ headSequence: 2n });
      expect((await again()).value?.event?.sequence).toBe(2n);
    } finally {
      await server.stop();
    }
  });
});

describe("event source settings", () => {
  it("reads from StreamEvents unless EVENTS_SOURCE=nats", () => {
    expect(readEventSourceConfig({})).toEqual({ kind: "grpc" });
    expect(readEventSourceConfig({ EVENTS_SOURCE: "nats", EVENTS_NATS_PREFIX: "mesh-b" })).toEqual({
      kind: "nats",
      servers: ["nats://127.0.0.1:4222"],
      prefix: "mesh-b",
    });
  });

  it("names a bad EVENTS_SOURCE", () => {
    expect(() => readEventSourceConfig({ EVENTS_SOURCE: "kafka" })).toThrow(ConfigError);
    expect(() => readEventSourceConfig({ EVENTS_SOURCE: "kafka" })).toThrow(/EVENTS_SOURCE/);
  });
});

function schemaOf(stream: DependencyName): DescMessage {
  return { users: UserEventSchema, products: ProductEventSchema, orders: OrderEventSchema }[stream];
}
