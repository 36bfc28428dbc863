import http2 from "node:http2";

/** How a gRPC call ended, as the server's trailers said. */
export interface RawStatus {
  code: number;
  message: string;
}

/** A gRPC length-prefixed message: the uncompressed flag, the length in 4 bytes, the bytes. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.byteLength);
  frame.writeUInt32BE(message.byteLength, 1);
  frame.set(message, 5);
  return frame;
}

/** The status a gRPC stream ends with: from its trailers, or from the headers of a trailers-only answer. */
export function streamStatus(stream: http2.ClientHttp2Stream): Promise<RawStatus> {
  return new Promise<RawStatus>((resolve, reject) => {
    stream.once("error", reject);
    const statusFrom = (headers: http2.IncomingHttpHeaders) => {
      if (headers["grpc-status"] === undefined) return;
      resolve({
        code: Number(headers["grpc-status"]),
        message: decodeURIComponent(String(headers["grpc-message"] ?? "")),
      });
    };
    stream.once("response", statusFrom);
    stream.once("trailers", statusFrom);
    stream.resume();
  });
}

/**
 * One unary gRPC call over a bare HTTP/2 client (`request` one message, or
 * as many as the array holds, none included), which sends `timeoutMs` as
 * the `grpc-timeout` header but, unlike a gRPC client, does not give up when
 * it passes: it waits for whatever status the server sends. For seeing what a
 * server answers to a deadline shorter than the round trip, which a real
 * client would replace with its own DEADLINE_EXCEEDED.
 */
export async function rawUnaryCall(
  address: string,
  path: string,
  request: Uint8Array | readonly Uint8Array[],
  options: {
    timeoutMs: number;
    headers?: Record<string, string>;
    waitMs?: number;
    /** The mesh's CA certificate, for a server with TLS; plaintext when omitted. */
    ca?: string | Buffer;
  },
): Promise<RawStatus> {
  const session =
    options.ca === undefined
      ? http2.connect(`http://${address}`)
      : // Every mesh certificate names localhost; SNI carries no addresses.
        http2.connect(`https://${address}`, { ca: options.ca, servername: "localhost" });
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<RawStatus>((resolve, reject) => {
      session.once("error", reject);
      const waitMs = options.waitMs ?? 10_000;
      timer = setTimeout(() => reject(new Error(`no status from ${path} within ${waitMs} ms`)), waitMs);
      const stream = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
        // Microseconds, so that fractions of a millisecond travel too.
        "grpc-timeout": `${Math.max(1, Math.round(options.timeoutMs * 1000))}u`,
        ...options.headers,
      });
      streamStatus(stream).then(resolve, reject);
      stream.end(
        request instanceof Uint8Array
          ? grpcFrame(request)
          : Buffer.concat(request.map((message) => grpcFrame(message))),
      );
    });
  } finally {
    clearTimeout(timer);
    session.destroy();
  }
}
