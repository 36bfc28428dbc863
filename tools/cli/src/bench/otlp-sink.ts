// Where the bench's traced products process sends its spans: an OTLP/HTTP
// trace endpoint (POST /v1/traces, JSON or protobuf) that reads each export,
// counts its bytes, answers as a collector does, and keeps nothing. It runs
// in a process of its own so that receiving spans costs neither the bench
// client nor the service under test. GET /stats answers
// `{"exports":…,"bytes":…}` for the report.
//
//   PORT=0 node --import tsx tools/cli/src/bench/otlp-sink.ts
//
// Prints one JSON line `{"msg":"ready","port":…}` when it listens (what
// spawnService waits for) and exits 0 on SIGTERM or SIGINT.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

let exports = 0;
let bytes = 0;

const server = createServer((request, response) => {
  if (request.method === "GET" && request.url === "/stats") {
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify({ exports, bytes }));
    return;
  }
  if (request.method !== "POST" || request.url !== "/v1/traces") {
    response.writeHead(404).end();
    return;
  }
  request.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
  });
  request.on("end", () => {
    exports++;
    // An empty ExportTraceServiceResponse: everything accepted.
    const json = request.headers["content-type"]?.startsWith("application/json") ?? false;
    response.writeHead(200, { "content-type": json ? "application/json" : "application/x-protobuf" });
    response.end(json ? "{}" : undefined);
  });
});

server.listen(Number(process.env.PORT ?? "0"), process.env.HOST ?? "127.0.0.1", () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ msg: "ready", port, pid: process.pid })}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
