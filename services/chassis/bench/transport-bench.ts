// What a unary call costs the client, for each way shopmesh can make one:
//
//   1. the SDK's grpc-js-backed Connect transport (createTransport kind "grpc-js"),
//   2. connect-node's own gRPC transport (createTransport kind "connect-node"),
//   3. grpc-js's own Client with makeUnaryRequest and the same protobuf-es
//      serializers: the floor the first one is measured against,
//   4. node's HTTP/2 client alone, framing the gRPC message and reading the
//      status by hand: not a client to use (no deadlines, resolution or
//      retries, and fewer headers), but about the least a client on
//      node:http2 pays per call.
//
// One echo server runs as its own process; its CPU is read from /proc and
// printed beside the client's, so that each client's CPU per call can be set
// against what its own calls cost the server. This process runs a closed
// loop with a fixed number of calls in flight for each client in turn
// (one-second slices, interleaved, order rotated), in several rounds, and
// prints the median over the rounds of calls per second and CPU per call,
// the client's as a ratio to grpc-js's own client. The goal: the grpc-js
// transport within 15 % of the floor.
//
//   npm run bench:transport -- [--duration 5] [--warmup 1] [--concurrency 16] [--rounds 3] [--message-bytes 16]
//
// `--only grpc-js|connect-node|floor|node-http2` runs one client alone, for profiling:
//
//   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx services/chassis/bench/transport-bench.ts --only grpc-js --rounds 1 --duration 10
//
// or the same settings as BENCH_DURATION, BENCH_WARMUP, BENCH_CONCURRENCY,
// BENCH_ROUNDS and BENCH_MESSAGE_BYTES (seconds for durations).
import { connect as connectHttp2 } from "node:http2";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Client as GrpcClient, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { encodeMessage, methodPath } from "@shopmesh/sdk/internal";
import { readCpuMicros, spawnService, type ServiceProcess } from "@shopmesh/cli";
import {
  EchoRequestSchema,
  EchoResponseSchema,
  EchoService,
  type EchoRequest,
  type EchoResponse,
} from "../../../gen/shopmesh/echo/v1/echo_pb.js";

interface Settings {
  durationMs: number;
  warmupMs: number;
  concurrency: number;
  rounds: number;
  messageBytes: number;
  only: ContenderKey | undefined;
}

function readSettings(): Settings {
  const { values } = parseArgs({
    options: {
      duration: { type: "string" },
      warmup: { type: "string" },
      concurrency: { type: "string" },
      rounds: { type: "string" },
      "message-bytes": { type: "string" },
      only: { type: "string" },
    },
    allowPositionals: false,
  });
  const number = (flag: string | undefined, variable: string, fallback: number, min: number) => {
    const text = flag ?? process.env[variable];
    if (text === undefined || text === "") return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || value < min)
      throw new Error(`${variable} / --${variable.slice(6).toLowerCase()}: expected a number >= ${min}, got ${text}`);
    return value;
  };
  return {
    durationMs: number(values.duration, "BENCH_DURATION", 5, 0.1) * 1000,
    warmupMs: number(values.warmup, "BENCH_WARMUP", 1, 0) * 1000,
    concurrency: Math.round(number(values.concurrency, "BENCH_CONCURRENCY", 16, 1)),
    rounds: Math.round(number(values.rounds, "BENCH_ROUNDS", 3, 1)),
    messageBytes: Math.round(number(values["message-bytes"], "BENCH_MESSAGE_BYTES", 16, 0)),
    only: readOnly(values.only),
  };
}

function readOnly(text: string | undefined): Settings["only"] {
  if (text === undefined || (contenderKeys as readonly string[]).includes(text)) return text as Settings["only"];
  throw new Error(`--only: expected one of ${contenderKeys.join(", ")}, got ${text}`);
}

const contenderKeys = ["grpc-js", "connect-node", "floor", "node-http2"] as const;
type ContenderKey = (typeof contenderKeys)[number];

/** One way of making an Echo call. */
interface Contender {
  key: ContenderKey;
  name: string;
  call: (message: string) => Promise<EchoResponse>;
  close: () => void;
}

function connectContender(key: Contender["key"], name: string, transport: GrpcTransport): Contender {
  const client = createClient(EchoService, transport);
  return { key, name, call: (message) => client.echo({ message }), close: () => transport.close() };
}

/** grpc-js's own client: no Connect, the same protobuf-es serializers. */
function grpcJsFloor(target: string): Contender {
  const client = new GrpcClient(target, credentials.createInsecure());
  const path = methodPath(EchoService.method.echo);
  const serialize = (value: EchoRequest) => encodeMessage(EchoRequestSchema, value);
  const deserialize = (bytes: Buffer) => fromBinary(EchoResponseSchema, bytes);
  return {
    key: "floor",
    name: "grpc-js Client (floor)",
    call: (message) =>
      new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          path,
          serialize,
          deserialize,
          create(EchoRequestSchema, { message }),
          new Metadata(),
          {},
          (error: ServiceError | null, response?: EchoResponse) => (error ? reject(error) : resolve(response!)),
        );
      }),
    close: () => client.close(),
  };
}

/**
 * A unary gRPC call made with node's HTTP/2 client and nothing else: one
 * length-prefixed message out, one back, the status from the trailers.
 */
function nodeHttp2Alone(target: string): Contender {
  const session = connectHttp2(`http://${target}`);
  // Kept so that calls failing after it say why; a session error is not thrown.
  let sessionError: Error | undefined;
  session.on("error", (error: Error) => (sessionError = error));
  const path = methodPath(EchoService.method.echo);
  return {
    key: "node-http2",
    name: "node:http2 alone",
    call: (message) =>
      new Promise((resolve, reject) => {
        const body = toBinary(EchoRequestSchema, create(EchoRequestSchema, { message }));
        const frame = Buffer.allocUnsafe(5 + body.byteLength);
        frame[0] = 0;
        frame.writeUInt32BE(body.byteLength, 1);
        frame.set(body, 5);
        const stream = session.request({
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc",
          te: "trailers",
        });
        const chunks: Buffer[] = [];
        let status: string | undefined;
        const fail = (why: string) =>
          reject(new Error(`node:http2 alone: ${why}${sessionError ? ` (session: ${sessionError.message})` : ""}`));
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        // A trailers-only answer (an error) carries its status in the headers.
        stream.on("response", (headers) => (status ??= headers["grpc-status"]?.toString()));
        stream.on("trailers", (trailers) => (status = trailers["grpc-status"]?.toString()));
        stream.on("error", (error: Error) => fail(error.message));
        // A stream reset without an error ends with neither 'end' nor 'error';
        // after either, this reject does nothing.
        stream.on("close", () => fail(`stream closed, code ${stream.rstCode}`));
        stream.on("end", () => {
          const answer = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
          if (status !== "0") return fail(`grpc-status ${status}`);
          if (answer.byteLength < 5 || answer[0] !== 0 || answer.byteLength !== 5 + answer.readUInt32BE(1))
            return fail(`not one uncompressed message: ${answer.byteLength} bytes`);
          resolve(fromBinary(EchoResponseSchema, answer.subarray(5)));
        });
        stream.end(frame);
      }),
    close: () => session.close(),
  };
}

interface Sample {
  calls: number;
  elapsedMs: number;
  cpuMicros: number;
  serverCpuMicros: number | undefined;
  latenciesMs: Float64Array;
}

/** Runs `concurrency` loops, each making one call after the other, until `ms` have passed. */
async function closedLoop(
  contender: Contender,
  message: string,
  concurrency: number,
  ms: number,
  record: boolean,
): Promise<{ calls: number; latencies: number[] }> {
  const end = performance.now() + ms;
  let calls = 0;
  const latencies: number[] = [];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const started = performance.now();
        const response = await contender.call(message);
        if (response.message.length !== message.length) throw new Error(`${contender.name}: wrong echo`);
        calls++;
        if (record) latencies.push(performance.now() - started);
      }
    }),
  );
  return { calls, latencies };
}

/** CPU time a process has used, from /proc (Linux only). */
function processCpuMicros(pid: number | undefined): number | undefined {
  return pid === undefined ? undefined : readCpuMicros(pid);
}

/** Measures one slice: `ms` of closed loop, with this process's CPU and the server's. */
async function measureSlice(
  contender: Contender,
  settings: Settings,
  ms: number,
  message: string,
  server: ServiceProcess,
): Promise<Sample> {
  const serverBefore = processCpuMicros(server.child.pid);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const { calls, latencies } = await closedLoop(contender, message, settings.concurrency, ms, true);
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  const serverAfter = processCpuMicros(server.child.pid);
  return {
    calls,
    elapsedMs,
    cpuMicros: cpu.user + cpu.system,
    serverCpuMicros: serverBefore !== undefined && serverAfter !== undefined ? serverAfter - serverBefore : undefined,
    latenciesMs: Float64Array.from(latencies),
  };
}

function mergeSamples(parts: Sample[]): Sample {
  const serverCpu = parts.map((part) => part.serverCpuMicros);
  const latencies = new Float64Array(parts.reduce((sum, part) => sum + part.latenciesMs.length, 0));
  let offset = 0;
  for (const part of parts) {
    latencies.set(part.latenciesMs, offset);
    offset += part.latenciesMs.length;
  }
  return {
    calls: parts.reduce((sum, part) => sum + part.calls, 0),
    elapsedMs: parts.reduce((sum, part) => sum + part.elapsedMs, 0),
    cpuMicros: parts.reduce((sum, part) => sum + part.cpuMicros, 0),
    serverCpuMicros: serverCpu.includes(undefined) ? undefined : serverCpu.reduce((sum, value) => sum! + value!, 0),
    latenciesMs: latencies.sort(),
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const perSecond = (sample: Sample) => (sample.calls * 1000) / sample.elapsedMs;
const cpuPerCall = (sample: Sample) => sample.cpuMicros / sample.calls;
const serverCpuPerCall = (sample: Sample) =>
  sample.serverCpuMicros === undefined ? Number.NaN : sample.serverCpuMicros / sample.calls;

function table(rows: string[][], rightAligned: boolean[]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows
    .map((row) =>
      row
        .map((cell, column) => (rightAligned[column] ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!)))
        .join("   "),
    )
    .join("\n");
}

const format = (value: number, digits = 0) =>
  Number.isFinite(value)
    ? value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : "-";

/** A ratio as "1.23x", or "-" when it could not be measured. */
const times = (ratio: number) => (Number.isFinite(ratio) ? `${format(ratio, 2)}x` : "-");

async function main() {
  const settings = readSettings();
  const message = "x".repeat(settings.messageBytes);
  const server = await spawnService({
    entry: fileURLToPath(new URL("../test/support/echo-main.ts", import.meta.url)),
    // "info" logs nothing per call, and spawnService needs the info-level ready line.
    env: { LOG_LEVEL: "info", TLS: "off" },
  });
  const all: Contender[] = [
    connectContender(
      "grpc-js",
      "grpc-js transport (SDK)",
      createTransport({ target: server.address, kind: "grpc-js" }),
    ),
    connectContender(
      "connect-node",
      "connect-node transport",
      createTransport({ target: server.address, kind: "connect-node" }),
    ),
    grpcJsFloor(server.address),
    nodeHttp2Alone(server.address),
  ];
  const contenders = all.filter((contender) => settings.only === undefined || contender.key === settings.only);
  for (const unused of all.filter((contender) => !contenders.includes(contender))) unused.close();
  const samples = new Map<string, Sample[]>(contenders.map((contender) => [contender.name, []]));

  process.stdout.write(
    `transport bench: ${settings.concurrency} calls in flight, ${settings.durationMs / 1000} s per client per round (interleaved 1 s slices) after ${settings.warmupMs / 1000} s warm-up each, ` +
      `${settings.rounds} round(s), ${settings.messageBytes}-byte message; node ${process.version}, ${availableParallelism()} CPUs; ` +
      `server pid ${server.child.pid} at ${server.address}\n\n`,
  );
  try {
    for (const contender of contenders) {
      if (settings.warmupMs > 0) await closedLoop(contender, message, settings.concurrency, settings.warmupMs, false);
    }
    // Each round gives every client `duration` in slices of at most a second,
    // taken in turns with the order rotated, so that a change in the load of
    // the (shared) machine falls on all of them alike.
    const slices = Math.max(1, Math.round(settings.durationMs / 1000));
    const sliceMs = settings.durationMs / slices;
    for (let round = 0; round < settings.rounds; round++) {
      const parts = new Map<string, Sample[]>(contenders.map((contender) => [contender.name, []]));
      for (let slice = 0; slice < slices; slice++) {
        const shift = round + slice;
        for (let index = 0; index < contenders.length; index++) {
          const contender = contenders[(index + shift) % contenders.length]!;
          parts.get(contender.name)!.push(await measureSlice(contender, settings, sliceMs, message, server));
        }
      }
      for (const contender of contenders) {
        const sample = mergeSamples(parts.get(contender.name)!);
        samples.get(contender.name)!.push(sample);
        const serverCpu =
          sample.serverCpuMicros === undefined
            ? ""
            : `, server CPU ${format(sample.serverCpuMicros / sample.calls, 1)} µs/call`;
        process.stdout.write(
          `round ${round + 1}  ${contender.name.padEnd(24)} ${format(perSecond(sample)).padStart(8)} calls/s, ` +
            `client CPU ${format(cpuPerCall(sample), 1)} µs/call${serverCpu}\n`,
        );
      }
    }
  } finally {
    for (const contender of contenders) contender.close();
    await server.stop();
  }

  const summary = contenders.map((contender) => {
    const runs = samples.get(contender.name)!;
    const p50 = median(runs.map((run) => percentile(run.latenciesMs, 50)));
    const p99 = median(runs.map((run) => percentile(run.latenciesMs, 99)));
    return {
      key: contender.key,
      name: contender.name,
      callsPerSecond: median(runs.map(perSecond)),
      cpuMicrosPerCall: median(runs.map(cpuPerCall)),
      serverCpuMicrosPerCall: median(runs.map(serverCpuPerCall)),
      p50,
      p99,
    };
  });
  const floor = summary.find((row) => row.key === "floor");
  if (!floor) {
    process.stdout.write(
      `\n${summary.map((row) => `${row.name}: ${format(row.callsPerSecond)} calls/s, ${format(row.cpuMicrosPerCall, 1)} µs client CPU/call, ${format(row.serverCpuMicrosPerCall, 1)} µs server CPU/call (${times(row.cpuMicrosPerCall / row.serverCpuMicrosPerCall)})`).join("\n")}\n`,
    );
    return;
  }
  const rows = [
    [
      "client",
      "calls/s",
      "vs floor",
      "client CPU µs/call",
      "vs floor",
      "server CPU µs/call",
      "client / server",
      "p50 ms",
      "p99 ms",
    ],
    ...summary.map((row) => [
      row.name,
      format(row.callsPerSecond),
      times(row.callsPerSecond / floor.callsPerSecond),
      format(row.cpuMicrosPerCall, 1),
      times(row.cpuMicrosPerCall / floor.cpuMicrosPerCall),
      format(row.serverCpuMicrosPerCall, 1),
      times(row.cpuMicrosPerCall / row.serverCpuMicrosPerCall),
      format(row.p50, 2),
      format(row.p99, 2),
    ]),
  ];
  process.stdout.write(
    `\nmedian of ${settings.rounds} round(s)\n${table(
      rows,
      rows[0]!.map((_, column) => column > 0),
    )}\n\n`,
  );

  const grpcJs = summary.find((row) => row.key === "grpc-js");
  if (!grpcJs) return;
  const slowerBy = 1 - grpcJs.callsPerSecond / floor.callsPerSecond;
  const costlierBy = grpcJs.cpuMicrosPerCall / floor.cpuMicrosPerCall - 1;
  const verdict = slowerBy <= 0.15 && costlierBy <= 0.15 ? "within" : "NOT within";
  process.stdout.write(
    `${grpcJs.name}: ${format(slowerBy * 100, 1)} % fewer calls/s and ${format(costlierBy * 100, 1)} % more client CPU per call ` +
      `than grpc-js's own client: ${verdict} the 15 % goal.\n`,
  );
}

await main();
