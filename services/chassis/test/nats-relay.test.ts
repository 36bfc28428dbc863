// The outbox relay against a real nats-server: an event log on a SQLite file
// in a temporary directory, relayed to JetStream, read back message by
// message from the stream. NATS is CI's (NATS_URL) or a private server; the
// outage test always starts its own, since it stops it.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { connect, type NatsConnection } from "nats";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  ConfigError,
  EventLog,
  natsEventNames,
  outboxSequenceHeader,
  readEventsRelayConfig,
  type NatsRelay,
  type NatsRelayOptions,
} from "@shopmesh/chassis";
import { startNatsRelay } from "@shopmesh/chassis/nats-relay";
import { UserEventSchema } from "@shopmesh/sdk/users/v1";
import {
  natsForTests,
  natsServer,
  spawnNatsServer,
  uniquePrefix,
  type TestNats,
} from "../../../test/support/nats-server.js";

// The outbox table as the services' migrations make it: created, then given its trace context columns.
const outboxSql = ["0001_outbox.sql", "0002_outbox_trace_context.sql"]
  .map((file) => readFileSync(fileURLToPath(new URL(`../../users/drizzle/${file}`, import.meta.url)), "utf8"))
  .join("\n");

// Without nats-server the relay tests are skipped (the settings tests run).
const natsMissing = natsServer().missing;
let nats: TestNats;
let client: NatsConnection;
const cleanups: (() => void | Promise<void>)[] = [];

beforeAll(async () => {
  if (natsMissing) return;
  nats = await natsForTests();
  client = await connect({ servers: nats.url });
});
afterAll(async () => {
  await client?.close();
  await nats?.stop();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A users-style event log on a SQLite file of its own. */
function openLog() {
  const dir = mkdtempSync(join(tmpdir(), "shopmesh-relay-"));
  const sqlite = new Database(join(dir, "users.sqlite"));
  sqlite.pragma("journal_mode = WAL");
  sqlite.exec(outboxSql);
  cleanups.push(() => {
    sqlite.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const log = new EventLog(sqlite, UserEventSchema, { heartbeatMs: 200 });
  const append = (count: number) => {
    for (let i = 0; i < count; i++) {
      const n = log.outbox.head() + 1;
      log.append({
        kind: {
          case: "userRegistered",
          value: { user: { id: `user-${n}`, email: `u${n}@example.com`, displayName: `U${n}` } },
        },
      });
    }
  };
  return { log, append };
}

/** Log lines the relay wrote. */
function captureLogs() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: "info" },
    { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

type RelayOptions = Pick<NatsRelayOptions<typeof UserEventSchema>, "eventLog" | "servers" | "prefix"> & {
  logger?: NatsRelayOptions<typeof UserEventSchema>["logger"];
};

/** A relay for "users" with short backoffs, closed after the test. */
function relay(options: RelayOptions) {
  const started = startNatsRelay({
    service: "users",
    logger: captureLogs().logger,
    initialBackoffMs: 50,
    maxBackoffMs: 300,
    ...options,
  });
  cleanups.push(() => started.close());
  return started;
}

/** Polls `condition` every 20 ms; fails with `what` after `timeoutMs`. */
async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const caughtUp = (r: NatsRelay, sequence: number) => () => r.state().connected && r.state().position >= sequence;

/** Every message of a stream in stream order: its stream sequence, outbox sequence header, Nats-Msg-Id and payload. */
async function streamContents(nc: NatsConnection, stream: string) {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(stream);
  const messages = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const message = await jsm.streams.getMessage(stream, { seq });
    messages.push({
      streamSequence: message.seq,
      outboxSequence: Number(message.header.get(outboxSequenceHeader)),
      msgId: message.header.get("Nats-Msg-Id"),
      data: message.data,
    });
  }
  return { info, messages };
}

const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe.skipIf(natsMissing)("the NATS relay", () => {
  it("creates the stream and publishes every event in order, with its outbox sequence", async () => {
    const { log, append } = openLog();
    const prefix = uniquePrefix("order");
    append(12); // before the relay starts: replayed
    const running = relay({ eventLog: log, servers: [nats.url], prefix });
    await waitFor("the first 12 events", caughtUp(running, 12));
    append(8); // while it follows: live
    await waitFor("all 20 events", caughtUp(running, 20));

    const names = natsEventNames("users", prefix);
    const { info, messages } = await streamContents(client, names.stream);
    expect(info.config).toMatchObject({ subjects: [names.subject], storage: "file" });
    expect(messages.map((m) => m.outboxSequence)).toEqual(oneTo(20));
    expect(messages.map((m) => m.streamSequence)).toEqual(oneTo(20));
    expect(new Set(messages.map((m) => m.msgId)).size).toBe(20);
    // The payload is the envelope as StreamEvents sends it, sequence included.
    const expected = log.outbox.after(0, 100).map((entry) => toBinary(UserEventSchema, log.decode(entry)));
    expect(messages.map((m) => Buffer.from(m.data))).toEqual(expected.map((bytes) => Buffer.from(bytes)));
    expect(running.state()).toMatchObject({ published: 20, duplicates: 0, position: 20 });
  });

  it("carries the producing write's trace context in the W3C headers and in the envelope", async () => {
    const { log } = openLog();
    const prefix = uniquePrefix("traced");
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const payload = (id: string) =>
      toBinary(UserEventSchema, create(UserEventSchema, { kind: { case: "userRegistered", value: { user: { id } } } }));
    // As EventLog.append stores them: one write traced (with trace state), one not.
    log.outbox.append("userRegistered", payload("traced"), Date.now(), { traceparent, tracestate: "vendor=1" });
    log.outbox.append("userRegistered", payload("untraced"), Date.now(), undefined);
    const running = relay({ eventLog: log, servers: [nats.url], prefix });
    await waitFor("both events", caughtUp(running, 2));

    const jsm = await client.jetstreamManager();
    const stream = natsEventNames("users", prefix).stream;
    const [traced, untraced] = [
      await jsm.streams.getMessage(stream, { seq: 1 }),
      await jsm.streams.getMessage(stream, { seq: 2 }),
    ];
    expect([traced.header.get("traceparent"), traced.header.get("tracestate")]).toEqual([traceparent, "vendor=1"]);
    expect(fromBinary(UserEventSchema, traced.data).traceContext).toMatchObject({
      traceparent,
      tracestate: "vendor=1",
    });
    expect(untraced.header.has("traceparent")).toBe(false);
    expect(fromBinary(UserEventSchema, untraced.data).traceContext).toBeUndefined();
  });

  it("resumes after a restart from the last message in JetStream: nothing lost, nothing published twice", async () => {
    const { log, append } = openLog();
    const prefix = uniquePrefix("restart");
    append(10);
    const first = relay({ eventLog: log, servers: [nats.url], prefix });
    await waitFor("10 events", caughtUp(first, 10));
    await first.close();

    // Stop a second relay in the middle of a long replay, wherever it has got to.
    append(1000);
    const second = relay({ eventLog: log, servers: [nats.url], prefix });
    await waitFor("part of the replay", () => second.state().position > 20);
    await second.close();
    const stoppedAt = second.state().position;

    append(5);
    const logs = captureLogs();
    const third = relay({ eventLog: log, servers: [nats.url], prefix, logger: logs.logger });
    await waitFor("all 1015 events", caughtUp(third, 1015));

    expect(logs.lines.find((line) => line.msg === "relaying events to NATS JetStream")).toMatchObject({
      after: stoppedAt,
    });
    // A relay that started from the beginning would find its first messages
    // deduplicated (Nats-Msg-Id) rather than stored twice: count those too.
    expect([second.state().duplicates, third.state().duplicates]).toEqual([0, 0]);
    expect(third.state().published).toBe(1015 - stoppedAt);
    const { messages } = await streamContents(client, natsEventNames("users", prefix).stream);
    expect(messages.map((m) => m.outboxSequence)).toEqual(oneTo(1015));
  });

  it("stores each event once and in order when two relays publish the same log at once", async () => {
    const { log, append } = openLog();
    const prefix = uniquePrefix("pair");
    append(300);
    const a = relay({ eventLog: log, servers: [nats.url], prefix });
    const b = relay({ eventLog: log, servers: [nats.url], prefix });
    await waitFor("both relays caught up", () => caughtUp(a, 300)() && caughtUp(b, 300)());
    const { messages } = await streamContents(client, natsEventNames("users", prefix).stream);
    expect(messages.map((m) => m.outboxSequence)).toEqual(oneTo(300));
    // Between them they stored each event once: the other relay's copy was acknowledged as a duplicate.
    expect(a.state().published + b.state().published).toBe(300);
  });

  it("keeps meshes with different prefixes apart on one server", async () => {
    const one = openLog();
    const two = openLog();
    const [prefixOne, prefixTwo] = [uniquePrefix("mesh"), uniquePrefix("mesh")];
    one.append(3);
    two.append(5);
    const r1 = relay({ eventLog: one.log, servers: [nats.url], prefix: prefixOne });
    const r2 = relay({ eventLog: two.log, servers: [nats.url], prefix: prefixTwo });
    await waitFor("both relays", () => caughtUp(r1, 3)() && caughtUp(r2, 5)());
    const first = await streamContents(client, natsEventNames("users", prefixOne).stream);
    const second = await streamContents(client, natsEventNames("users", prefixTwo).stream);
    expect(first.messages.map((m) => m.outboxSequence)).toEqual(oneTo(3));
    expect(second.messages.map((m) => m.outboxSequence)).toEqual(oneTo(5));
  });

  it("survives NATS going down, and catches up once it is back", async () => {
    const server = await spawnNatsServer();
    cleanups.push(() => server.stop());
    const { log, append } = openLog();
    const prefix = uniquePrefix("outage");
    const logs = captureLogs();
    append(5);
    const running = relay({ eventLog: log, servers: [server.url], prefix, logger: logs.logger });
    await waitFor("5 events", caughtUp(running, 5));

    await server.kill("SIGKILL");
    append(7); // committed while NATS is down
    await waitFor("the relay to notice", () => !running.state().connected && running.state().failures >= 2);
    expect(logs.lines.some((line) => line.level === 40 && line.msg === "event relay to NATS failed; retrying")).toBe(
      true,
    );

    await server.restart();
    await waitFor("the relay to catch up", caughtUp(running, 12));
    append(3);
    await waitFor("live events after the outage", caughtUp(running, 15));

    const nc = await connect({ servers: server.url });
    try {
      const { messages } = await streamContents(nc, natsEventNames("users", prefix).stream);
      expect(messages.map((m) => m.outboxSequence)).toEqual(oneTo(15));
    } finally {
      await nc.close();
    }
  });

  it("refuses, with a reason and without a crash, to relay a database behind the stream", async () => {
    const prefix = uniquePrefix("wiped");
    const original = openLog();
    original.append(5);
    const first = relay({ eventLog: original.log, servers: [nats.url], prefix });
    await waitFor("5 events", caughtUp(first, 5));
    await first.close();

    // A fresh database relayed under the same prefix: its sequence 1 is not the stream's 1.
    const fresh = openLog();
    fresh.append(2);
    const logs = captureLogs();
    const second = relay({ eventLog: fresh.log, servers: [nats.url], prefix, logger: logs.logger });
    await waitFor("two refusals", () => second.state().failures >= 2);
    await second.close();
    expect(second.state()).toMatchObject({ connected: false, published: 0 });
    expect(logs.lines.find((line) => line.level === 50)?.msg).toMatch(
      /JetStream holds events this outbox does not have/,
    );
    const { messages } = await streamContents(client, natsEventNames("users", prefix).stream);
    expect(messages.map((m) => m.outboxSequence)).toEqual(oneTo(5));
  });

  it("stops when closed, even while NATS refuses connections", async () => {
    const { log } = openLog();
    const running = relay({ eventLog: log, servers: ["nats://127.0.0.1:9"], prefix: uniquePrefix("refused") });
    await waitFor("a failed attempt", () => running.state().failures >= 1);
    await running.close();
    // Closed means no further attempts: the count of failed ones stays where it was.
    const failures = running.state().failures;
    await sleep(600);
    expect(running.state().failures).toBe(failures);
  });
});

describe("relay settings", () => {
  it("is off unless EVENTS_RELAY=nats, with local defaults", () => {
    expect(readEventsRelayConfig({})).toEqual({ kind: "none" });
    expect(readEventsRelayConfig({ EVENTS_RELAY: "nats" })).toEqual({
      kind: "nats",
      streamReplicas: 1,
      servers: ["nats://127.0.0.1:4222"],
      prefix: "shopmesh",
    });
    expect(
      readEventsRelayConfig({
        EVENTS_RELAY: "nats",
        NATS_URL: "nats://10.0.0.1:4222, nats://10.0.0.2:4222",
        EVENTS_NATS_PREFIX: "mesh-b",
        EVENTS_STREAM_REPLICAS: "3",
      }),
    ).toEqual({
      kind: "nats",
      streamReplicas: 3,
      servers: ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"],
      prefix: "mesh-b",
    });
  });

  it.each([
    ["EVENTS_RELAY", { EVENTS_RELAY: "kafka" }],
    ["NATS_URL", { EVENTS_RELAY: "nats", NATS_URL: "http://nowhere" }],
    ["EVENTS_NATS_PREFIX", { EVENTS_RELAY: "nats", EVENTS_NATS_PREFIX: "Has.Dots" }],
    ["EVENTS_STREAM_REPLICAS", { EVENTS_RELAY: "nats", EVENTS_STREAM_REPLICAS: "6" }],
  ])("names %s when it is bad", (variable, env) => {
    const error = (() => {
      try {
        readEventsRelayConfig(env);
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
  });

  it("derives a stream and a subject per service from the prefix", () => {
    expect(natsEventNames("users", "shopmesh")).toEqual({
      stream: "SHOPMESH_USERS",
      subject: "shopmesh.users.v1.events",
    });
    expect(natsEventNames("orders", "mesh-b")).toEqual({ stream: "MESH-B_ORDERS", subject: "mesh-b.orders.v1.events" });
  });
});
