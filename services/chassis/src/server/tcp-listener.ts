import { createServer, type Socket } from "node:net";
import { ServerCredentials, type Server } from "@grpc/grpc-js";
import { listenOn } from "./listen-on.js";

/** A listening socket that hands connections to a grpc-js server. */
export interface TcpListener {
  readonly port: number;
  /** Stops accepting connections and drops those still in their handshake. */
  close(): void;
  /**
   * Resolves once every connection handed to the grpc-js server has closed.
   * grpc-js's tryShutdown is not enough on its own: from Node.js 24 an HTTP/2
   * server's close() closes its sessions itself, grpc-js then finds them
   * closed and reports the shutdown done while their calls are still running.
   */
  connectionsClosed(): Promise<void>;
}

/** The client connection preface (RFC 9113, section 3.4). */
const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const frameHeaderBytes = 9;
const settingsFrameType = 0x4;
/** The largest frame a peer may send before it has seen our settings (SETTINGS_MAX_FRAME_SIZE's initial value). */
const initialMaxFrameBytes = 16_384;

/**
 * How many bytes the handshake takes when `received` starts with the
 * preface and a SETTINGS frame, or undefined when more bytes are needed to
 * tell; 0 when what arrived is not an HTTP/2 handshake at all (HTTP/2 then
 * refuses it with its own error).
 */
function handshakeBytes(received: Buffer): number | undefined {
  const compared = Math.min(received.length, preface.length);
  if (!received.subarray(0, compared).equals(preface.subarray(0, compared))) return 0;
  if (received.length < preface.length + frameHeaderBytes) return undefined;
  const length = received.readUIntBE(preface.length, 3);
  if (received[preface.length + 3] !== settingsFrameType || length > initialMaxFrameBytes) return 0;
  const total = preface.length + frameHeaderBytes + length;
  return received.length >= total ? total : undefined;
}

/** A TLS record carrying a handshake message (RFC 8446, section 5.1): the ClientHello comes in one. */
const tlsHandshakeRecord = 22;
const tlsRecordHeaderBytes = 5;
/** The largest TLS record a peer may send (2^14 plus room for expansion). */
const maxTlsRecordBytes = 16_384 + 2_048;

/**
 * The same for a TLS connection: how many bytes the first record, the
 * client's hello, takes; 0 when what arrived is not TLS at all (a plaintext
 * client, refused by the TLS layer with its own error).
 */
function tlsHelloBytes(received: Buffer): number | undefined {
  if (received[0] !== tlsHandshakeRecord) return 0;
  if (received.length >= 2 && received[1] !== 3) return 0;
  if (received.length < tlsRecordHeaderBytes) return undefined;
  const length = received.readUInt16BE(3);
  if (length > maxTlsRecordBytes) return 0;
  const total = tlsRecordHeaderBytes + length;
  return received.length >= total ? total : undefined;
}

/** Options for {@link listenForGrpc}. */
export interface ListenOptions {
  host: string;
  port: number;
  handshakeTimeoutMs: number;
  /** Connections open at once; Node closes the ones beyond it as they arrive. */
  maxConnections: number;
  /** Told about each connection closed for being over `maxConnections`. */
  onDropped?: () => void;
  /** TLS credentials (see tls/certificate-files.ts); plaintext when omitted. */
  credentials?: ServerCredentials;
}

/**
 * Listens on host:port and hands each connection to the grpc-js server once
 * the client has sent the HTTP/2 connection preface and its first SETTINGS
 * frame, which a client sends right after connecting. A connection that has
 * not done so within `handshakeTimeoutMs` is destroyed: grpc-js has no such
 * timeout, and a socket that sends nothing would otherwise hold a file
 * descriptor until the client gives up (21,000 of them held 18,304 of a
 * service's 20,000). The bytes read are put back, and HTTP/2 reads them
 * first (Node's http2 replays data a socket has buffered), so the connection
 * then runs on grpc-js's own HTTP/2 session exactly as if grpc-js had
 * accepted it (`Server.createConnectionInjector`). Owning the listening
 * socket also caps the connections open at once, so that however many
 * arrive, the process keeps file descriptors for its database and its own
 * calls. Over TLS the first thing a client sends is its hello instead, and
 * the timeout runs until that has come whole; the rest of the TLS handshake
 * is bounded by Node's own TLS handshake timeout.
 */
export async function listenForGrpc(server: Server, options: ListenOptions): Promise<TcpListener> {
  const { host, port, handshakeTimeoutMs } = options;
  const secure = options.credentials !== undefined;
  const injector = server.createConnectionInjector(options.credentials ?? ServerCredentials.createInsecure());
  const handshaking = new Set<Socket>();
  const handed = new Set<Socket>();
  /** Who waits for the last handed connection to close. */
  const closeWaiters: (() => void)[] = [];
  const onSocketError = () => undefined; // a reset before the handshake ends is the client's business; 'close' follows

  const tcp = createServer((socket) => {
    handshaking.add(socket);
    // Chunks kept apart until enough bytes have come to tell: concatenating
    // on every chunk would copy quadratically when they come a byte at a time.
    const chunks: Buffer[] = [];
    let receivedBytes = 0;
    let neededBytes = secure ? tlsRecordHeaderBytes : frameHeaderBytes + preface.length;
    const timer = setTimeout(() => socket.destroy(), handshakeTimeoutMs);
    const forget = () => {
      clearTimeout(timer);
      handshaking.delete(socket);
      socket.off("data", onData);
      socket.off("close", forget);
    };
    const onData = (chunk: Buffer) => {
      const offset = receivedBytes;
      chunks.push(chunk);
      receivedBytes += chunk.length;
      if (secure) {
        // A first byte that cannot start a TLS hello is known at once; otherwise wait for the record header, then the record.
        if (receivedBytes < neededBytes && !(offset === 0 && chunk[0] !== tlsHandshakeRecord)) return;
        const received = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, receivedBytes);
        chunks.length = 0;
        chunks.push(received);
        const hello = tlsHelloBytes(received);
        if (hello === undefined) {
          if (received.length >= tlsRecordHeaderBytes) neededBytes = tlsRecordHeaderBytes + received.readUInt16BE(3);
          return;
        }
        hand(received);
        return;
      }
      // Bytes that are not the preface are known at once; otherwise wait for the preface and frame header, then the frame.
      const prefaceBytes = Math.max(0, Math.min(chunk.length, preface.length - offset));
      const notPreface =
        prefaceBytes > 0 && !chunk.subarray(0, prefaceBytes).equals(preface.subarray(offset, offset + prefaceBytes));
      if (!notPreface && receivedBytes < neededBytes) return;
      const received = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, receivedBytes);
      chunks.length = 0;
      chunks.push(received);
      const handshake = handshakeBytes(received);
      if (handshake === undefined) {
        neededBytes =
          received.length >= preface.length + frameHeaderBytes
            ? preface.length + frameHeaderBytes + received.readUIntBE(preface.length, 3)
            : neededBytes;
        return;
      }
      hand(received);
    };
    const hand = (received: Buffer) => {
      forget();
      socket.pause();
      socket.off("error", onSocketError);
      socket.unshift(received);
      handed.add(socket);
      socket.once("close", () => {
        handed.delete(socket);
        if (handed.size === 0) for (const resolve of closeWaiters.splice(0)) resolve();
      });
      injector.injectConnection(socket);
    };
    socket.on("error", onSocketError);
    socket.on("data", onData);
    socket.once("close", forget);
  });

  tcp.maxConnections = options.maxConnections;
  tcp.on("drop", () => options.onDropped?.());

  const boundPort = await listenOn(tcp, host, port);
  return {
    port: boundPort,
    close() {
      tcp.close();
      for (const socket of handshaking) socket.destroy();
      handshaking.clear();
    },
    connectionsClosed() {
      if (handed.size === 0) return Promise.resolve();
      return new Promise<void>((resolve) => closeWaiters.push(resolve));
    },
  };
}
