// What many concurrent event-stream replays cost a producer in memory, and
// whether it gets that memory back once they are cancelled.
//
// Starts users, products and orders as real processes (the mesh's usual node
// flags, see SHOPMESH_SERVICE_NODE_FLAGS), writes `--events` orders through
// the contracts so that orders' outbox holds that many events, samples the
// orders process's RSS, then opens `--streams` StreamEvents replays from
// after_sequence 0 at once, with mesh certificates of `--callers` different
// readers, and reads them for `--seconds`. Then it cancels every stream and
// samples RSS again `--settle` seconds (5) later. Prints RSS before, at the peak and after, and
// how the streams ended; `--report` also writes them as markdown.
//
//   node --import tsx tools/cli/src/bench/event-streams-memory.ts \
//     [--events 5000] [--streams 1000] [--callers 1] [--seconds 15] [--settle 5] \
//     [--max-streams N] [--max-streams-per-caller N] [--batch N] [--report reports/event-streams-memory.md] [--label text]
//
// `--max-streams`, `--max-streams-per-caller` and `--batch` become orders'
// EVENTS_MAX_STREAMS, EVENTS_MAX_STREAMS_PER_CALLER and EVENTS_BATCH; left
// out, orders runs with its defaults.
import { setMaxListeners } from "node:events";
import { appendFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { numberOption } from "../command-line.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { readRssBytes } from "../process/proc-stats.js";
import { createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { LocalMesh, serviceNodeFlags } from "../mesh/local-mesh.js";

const adminEmail = "admin@streams-bench.shopmesh.local";
/** Client connections the streams are spread over. */
const connections = 4;
/** Writes in flight while seeding. */
const seedConcurrency = 8;

interface Settings {
  events: number;
  streams: number;
  callers: number;
  seconds: number;
  settleMs: number;
  maxStreams: number | undefined;
  maxStreamsPerCaller: number | undefined;
  batch: number | undefined;
  report: string | undefined;
  label: string | undefined;
}

function readSettings(): Settings {
  const { values } = parseArgs({
    options: {
      events: { type: "string", default: "5000" },
      streams: { type: "string", default: "1000" },
      callers: { type: "string", default: "1" },
      seconds: { type: "string", default: "15" },
      settle: { type: "string", default: "5" },
      "max-streams": { type: "string" },
      "max-streams-per-caller": { type: "string" },
      batch: { type: "string" },
      report: { type: "string" },
      label: { type: "string" },
    },
    allowPositionals: false,
  });
  const whole = (name: string, text: string | undefined, min: number, max: number): number | undefined =>
    text === undefined ? undefined : numberOption(name, text, min, max, true);
  return {
    events: whole("events", values.events, 1, 100_000)!,
    streams: whole("streams", values.streams, 1, 5_000)!,
    callers: whole("callers", values.callers, 1, 1_000)!,
    seconds: whole("seconds", values.seconds, 1, 300)!,
    settleMs: whole("settle", values.settle, 0, 600)! * 1000,
    maxStreams: whole("max-streams", values["max-streams"], 1, 100_000),
    maxStreamsPerCaller: whole("max-streams-per-caller", values["max-streams-per-caller"], 1, 100_000),
    batch: whole("batch", values.batch, 1, 10_000),
    report: values.report,
    label: values.label,
  };
}

const mib = (bytes: number | undefined) => (bytes === undefined ? "?" : (bytes / 1024 / 1024).toFixed(1));

/** Writes `count` one-line orders as one customer, `seedConcurrency` at a time. */
async function seedOrders(mesh: LocalMesh, count: number, transports: GrpcTransport[]): Promise<void> {
  const transport = (service: "users" | "products" | "orders", token?: string) => {
    const made = createTransport({ target: mesh.address(service), token, tls: mesh.clientTls(service) });
    transports.push(made);
    return made;
  };
  const users = createClient(UsersService, transport("users"));
  const admin = await users.signUp({ email: adminEmail, password: "streams-bench-admin", displayName: "Admin" });
  const customer = await users.signUp({
    email: "customer@streams-bench.shopmesh.local",
    password: "streams-bench-customer",
    displayName: "Customer",
  });
  const products = createClient(ProductsService, transport("products", admin.session!.accessToken));
  const productIds: string[] = [];
  for (let index = 0; index < 20; index++) {
    const { product } = await products.createProduct({
      name: `Stream bench product ${index + 1}`,
      description: "A product whose orders fill the outbox.",
      price: { currencyCode: "EUR", minorUnits: BigInt(500 + index * 37) },
    });
    productIds.push(product!.id);
  }
  const orders = createClient(OrdersService, transport("orders", customer.session!.accessToken));
  let next = 0;
  await Promise.all(
    Array.from({ length: seedConcurrency }, async () => {
      while (next < count) {
        const index = next++;
        await orders.createOrder({
          requestId: `streams-bench-${index}`,
          items: [
            { productId: productIds[index % productIds.length]!, quantity: 1 + (index % 3) },
            { productId: productIds[(index * 7 + 3) % productIds.length]!, quantity: 1 },
          ],
        });
      }
    }),
  );
}

interface StreamOutcome {
  /** OK when the stream was still open at the cancellation (the reader cancelled it). */
  code: string;
  message?: string;
  /** Events received (heartbeats not counted). */
  received: number;
  /** Whether the first message (the head) arrived. */
  opened: boolean;
}

async function main(): Promise<void> {
  const settings = readSettings();
  const dataDir = mkdtempSync(join(tmpdir(), "shopmesh-streams-memory-"));
  const transports: GrpcTransport[] = [];
  const nodeFlags = serviceNodeFlags(process.versions.node);
  const limits: Record<string, string> = {};
  if (settings.maxStreams !== undefined) limits.EVENTS_MAX_STREAMS = String(settings.maxStreams);
  if (settings.maxStreamsPerCaller !== undefined)
    limits.EVENTS_MAX_STREAMS_PER_CALLER = String(settings.maxStreamsPerCaller);
  if (settings.batch !== undefined) limits.EVENTS_BATCH = String(settings.batch);
  const common = { LOG_LEVEL: "warn", ADMIN_PORT: "0", SHUTDOWN_GRACE: "2s" };
  // Each caller reads with a certificate of its own, as separate services would.
  const readers = Array.from({ length: settings.callers }, (_, i) => `streams-bench-${i + 1}`);
  let mesh: LocalMesh | undefined;
  try {
    mesh = await LocalMesh.start({
      dataDir,
      services: ["users", "products", "orders"],
      extraIdentities: readers,
      env: {
        users: { ...common, LOG_LEVEL: "info", ADMIN_EMAILS: adminEmail, PASSWORD_HASH_COST: "1024" },
        products: { ...common, LOG_LEVEL: "info" },
        orders: { ...common, LOG_LEVEL: "info", EVENTS_READERS: readers.join(","), ...limits },
      },
      // A loaded machine can take a while to start three processes.
      spawn: () => ({ keepLogs: false, readyTimeoutMs: 120_000 }),
    });
    const ordersPid = mesh.processes.get("orders")!.child.pid!;
    const rss = () => readRssBytes(ordersPid);
    console.log(`orders pid ${ordersPid}, node flags "${nodeFlags.join(" ")}", limits ${JSON.stringify(limits)}`);

    const seedStarted = performance.now();
    await seedOrders(mesh, settings.events, transports);
    console.log(
      `seeded ${settings.events} orders (one event each) in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`,
    );
    await sleep(1_000);
    const before = rss();

    const clients = readers.map((reader) =>
      Array.from({ length: connections }, () => {
        const transport = createTransport({ target: mesh!.address("orders"), tls: mesh!.clientTls("orders", reader) });
        transports.push(transport);
        return createClient(OrdersService, transport);
      }),
    );

    let peak = before ?? 0;
    let peakAtMs = 0;
    const started = performance.now();
    const sampler = setInterval(() => {
      const now = rss() ?? 0;
      if (now > peak) {
        peak = now;
        peakAtMs = performance.now() - started;
      }
    }, 100);

    const controller = new AbortController();
    // One signal cancels every stream, each of which listens to it.
    setMaxListeners(settings.streams + 10, controller.signal);
    const outcomes: Promise<StreamOutcome>[] = [];
    for (let i = 0; i < settings.streams; i++) {
      const caller = clients[i % clients.length]!;
      const client = caller[Math.floor(i / clients.length) % connections]!;
      outcomes.push(
        (async (): Promise<StreamOutcome> => {
          let received = 0;
          let opened = false;
          try {
            for await (const message of client.streamEvents({ afterSequence: 0n }, { signal: controller.signal })) {
              opened = true;
              if (message.event) received++;
            }
            return { code: "ENDED", received, opened };
          } catch (error) {
            if (controller.signal.aborted) return { code: "OK", received, opened };
            const failure = ConnectError.from(error);
            return { code: Code[failure.code], message: failure.rawMessage, received, opened };
          }
        })(),
      );
    }
    await sleep(settings.seconds * 1000);
    const atCancel = rss();
    controller.abort();
    const ended = await Promise.all(outcomes);
    const cancelledAtMs = performance.now() - started;
    await sleep(settings.settleMs);
    clearInterval(sampler);
    const after = rss();

    const byCode = new Map<string, { streams: number; message?: string }>();
    for (const outcome of ended) {
      const entry = byCode.get(outcome.code) ?? { streams: 0, message: outcome.message };
      entry.streams++;
      byCode.set(outcome.code, entry);
    }
    const events = ended.reduce((sum, outcome) => sum + outcome.received, 0);
    const opened = ended.filter((outcome) => outcome.opened).length;
    const lines = [
      `orders RSS before: ${mib(before)} MiB`,
      `orders RSS peak: ${mib(peak)} MiB (${(peakAtMs / 1000).toFixed(1)} s after the streams opened)`,
      `orders RSS at cancel: ${mib(atCancel)} MiB`,
      `orders RSS ${settings.settleMs / 1000} s after cancel: ${mib(after)} MiB`,
      `streams: ${[...byCode].map(([code, { streams, message }]) => `${streams} ${code}${message ? ` ("${message}")` : ""}`).join(", ")}`,
      `streams whose first message arrived: ${opened}; events delivered: ${events} in ${(cancelledAtMs / 1000).toFixed(1)} s`,
    ];
    for (const line of lines) console.log(line);
    if (settings.report) writeReport(settings, nodeFlags, limits, { before, peak, atCancel, after, byCode, events });
  } finally {
    for (const transport of transports) transport.close();
    await mesh?.stop("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function writeReport(
  settings: Settings,
  nodeFlags: readonly string[],
  limits: Record<string, string>,
  figures: {
    before: number | undefined;
    peak: number;
    atCancel: number | undefined;
    after: number | undefined;
    byCode: Map<string, { streams: number; message?: string }>;
    events: number;
  },
): void {
  const path = settings.report!;
  if (!existsSync(path)) {
    writeFileSync(
      path,
      [
        "# Event streams: memory of concurrent replays",
        "",
        "Written by `node --import tsx tools/cli/src/bench/event-streams-memory.ts --report <this file>`, one row per run.",
        `orders runs with the mesh's node flags; ${settings.events} events in its outbox; every stream replays from after_sequence 0`,
        `and is read as fast as the client can for the stated time, then cancelled. RSS of the orders process, MiB;`,
        `"after" is the stated seconds after the cancellation. "OK" streams were open until the reader cancelled them.`,
        "",
        "| run | node flags | limits | streams (callers) | before | peak | at cancel | after (s) | streams ended | events delivered |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
        "",
      ].join("\n"),
    );
  }
  const ended = [...figures.byCode].map(([code, { streams }]) => `${streams} ${code}`).join(", ");
  const limitText =
    Object.keys(limits).length === 0
      ? "defaults"
      : Object.entries(limits)
          .map(([k, v]) => `${k}=${v}`)
          .join(" ");
  appendFileSync(
    path,
    `| ${settings.label ?? ""} | \`${nodeFlags.join(" ")}\` | ${limitText} | ${settings.streams} (${settings.callers}) | ${mib(figures.before)} | ${mib(figures.peak)} | ${mib(figures.atCancel)} | ${mib(figures.after)} (${settings.settleMs / 1000}) | ${ended} | ${figures.events} |\n`,
  );
}

await main();
