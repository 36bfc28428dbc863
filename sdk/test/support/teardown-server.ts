// A bare HTTP/2 server that accepts a gRPC call and then breaks it the way
// the request's `x-teardown` header asks, for tests of what a client makes of
// a connection torn down under a call. It logs a `ready` line with its port,
// as a service does.
import http2 from "node:http2";
import type { Socket } from "node:net";

const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_REFUSED_STREAM } = http2.constants;

/** Each way of breaking a call, after the response headers went out unless it says otherwise. */
const teardowns: Record<string, (stream: http2.ServerHttp2Stream) => void> = {
  // The whole session ends with INTERNAL_ERROR: a GOAWAY carrying code 2, then the socket closes.
  "session-error": (stream) => stream.session?.destroy(new Error("torn down by the test"), NGHTTP2_INTERNAL_ERROR),
  // The session ends without a GOAWAY error code.
  "session-destroy": (stream) => stream.session?.destroy(),
  // This one stream is reset with INTERNAL_ERROR; the session stays up.
};

/** Calls seen per `x-unavailable-first` key: the first N of them fail with UNAVAILABLE, the next succeeds. */
const attempts = new Map<string, number>();

/** The raw sockets by the client's port, so that a call can reset its connection as a killed process's kernel does. */
const sockets = new Map<number, Socket>();

const server = http2.createServer();
server.on("connection", (socket: Socket) => {
  sockets.set(socket.remotePort ?? 0, socket);
  socket.on("close", () => sockets.delete(socket.remotePort ?? 0));
});
server.on("session", (session) => session.on("error", () => undefined));
server.on("stream", (stream, headers) => {
  stream.on("error", () => undefined);
  // "key:N": the first N calls with that key get the response headers and an
  // answer, then their connection is reset before the trailers (the server
  // killed while answering); the next answers with its attempt number.
  const resetAfterHeaders = /^(.+):(\d+)$/.exec(String(headers["x-reset-after-headers"] ?? ""));
  if (resetAfterHeaders) {
    const [, key, failures] = resetAfterHeaders;
    const seen = (attempts.get(key!) ?? 0) + 1;
    attempts.set(key!, seen);
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.resume();
    if (seen <= Number(failures)) {
      stream.write(Buffer.alloc(5), () => sockets.get(stream.session?.socket.remotePort ?? 0)?.resetAndDestroy());
      return;
    }
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "x-attempt": String(seen) }));
    stream.on("end", () => stream.end(Buffer.alloc(5)));
    return;
  }
  // "key:N": the first N calls with that key fail with UNAVAILABLE (before any
  // work, as a server going away does); the next answers an empty message.
  const unavailableFirst = /^(.+):(\d+)$/.exec(String(headers["x-unavailable-first"] ?? ""));
  if (unavailableFirst) {
    const [, key, failures] = unavailableFirst;
    const seen = (attempts.get(key!) ?? 0) + 1;
    attempts.set(key!, seen);
    if (seen <= Number(failures)) {
      stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "14" }, { endStream: true });
      return;
    }
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "x-attempt": String(seen) }));
    stream.resume();
    stream.on("end", () => stream.end(Buffer.alloc(5)));
    return;
  }
  // "key:N": the first N calls with that key get the response headers, then trailers with
  // UNAVAILABLE (and the `x-pushback` header's value as grpc-retry-pushback-ms, when sent).
  const unavailableAfterHeaders = /^(.+):(\d+)$/.exec(String(headers["x-unavailable-after-headers"] ?? ""));
  if (unavailableAfterHeaders) {
    const [, key, failures] = unavailableAfterHeaders;
    const seen = (attempts.get(key!) ?? 0) + 1;
    attempts.set(key!, seen);
    const pushback =
      headers["x-pushback"] === undefined ? {} : { "grpc-retry-pushback-ms": String(headers["x-pushback"]) };
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.resume();
    stream.on("wantTrailers", () =>
      stream.sendTrailers(
        seen <= Number(failures)
          ? { "grpc-status": "14", "grpc-message": "unavailable after its headers", ...pushback }
          : { "grpc-status": "0", "x-attempt": String(seen) },
      ),
    );
    stream.on("end", () => stream.end(seen <= Number(failures) ? undefined : Buffer.alloc(5)));
    return;
  }
  const how = String(headers["x-teardown"] ?? "");
  // Reset before any response: refused, as a server that will not take the
  // stream does, or failed with INTERNAL_ERROR while the session stays up.
  if (how === "refuse" || how === "stream-internal") {
    stream.close(how === "refuse" ? NGHTTP2_REFUSED_STREAM : NGHTTP2_INTERNAL_ERROR);
    return;
  }
  const teardown = teardowns[how];
  if (!teardown) {
    stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "12" }, { endStream: true });
    return;
  }
  stream.respond({ ":status": 200, "content-type": "application/grpc" });
  // Mid-call: the request has arrived and the headers are out, but no answer.
  stream.once("data", () => setImmediate(() => teardown(stream)));
});
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ msg: "ready", port })}\n`);
});
process.on("SIGTERM", () => process.exit(0));
