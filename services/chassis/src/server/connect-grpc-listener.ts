import {
  createSecureServer,
  createServer,
  type Http2SecureServer,
  type Http2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Session,
} from "node:http2";
import type { DescService } from "@bufbuild/protobuf";
import { createContextValues, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { peerIdentityKey, SocketPeerIdentity } from "../auth/peer-identity.js";
import { maxTimerMs } from "../config.js";
import type { CertificateFiles } from "../tls/certificate-files.js";
import { listenOn } from "./listen-on.js";
import type { TcpListener } from "./tcp-listener.js";

/** Options for {@link listenForConnectGrpc}. */
export interface ConnectGrpcListenOptions {
  host: string;
  port: number;
  /** Every service the port answers, health included. */
  services: { service: DescService; impl: object }[];
  /** Connect interceptors around every call, outermost first (the HTTP call gate, then the service's). */
  interceptors: Interceptor[];
  /** Largest request message accepted, in bytes. */
  maxRequestBytes: number;
  maxConcurrentStreams: number;
  /** TLS with these files, a client certificate asked for but not required (as on grpc-js's port); h2c when absent. */
  tls?: CertificateFiles;
}

/**
 * Serves the gRPC port with connect-node's adapter on node:http2 instead of
 * grpc-js (GRPC_SERVER=connect-node): the same ServiceImpl objects,
 * interceptors and admission, so that the bench can set the stack that
 * connect-es users build from beside the one the services run on. It has
 * none of the gRPC port's connection limits (handshake timeout,
 * MAX_CONNECTIONS, connection age) and no server reflection: it is there
 * to be measured against, not to run in production.
 */
export async function listenForConnectGrpc(options: ConnectGrpcListenOptions): Promise<TcpListener> {
  const adapter = connectNodeAdapter({
    routes(router) {
      for (const { service, impl } of options.services) router.service(service, impl as ServiceImpl<DescService>);
    },
    contextValues(req) {
      const values = createContextValues();
      values.set(peerIdentityKey, new SocketPeerIdentity(req.socket));
      return values;
    },
    grpc: true,
    grpcWeb: false,
    connect: false,
    interceptors: options.interceptors,
    readMaxBytes: options.maxRequestBytes,
    // Node's timers fire at once past 2^31 - 1 ms, so a longer timeout would end the call at once.
    maxTimeoutMs: maxTimerMs,
  });
  const handle = (req: Http2ServerRequest, res: Http2ServerResponse) => void adapter(req, res);
  const settings = { maxConcurrentStreams: options.maxConcurrentStreams };
  const tls = options.tls;
  let stopRenewals: (() => void) | undefined;
  let server: Http2Server | Http2SecureServer;
  if (tls === undefined) server = createServer({ settings }, handle);
  else {
    const secure = createSecureServer(
      {
        settings,
        cert: tls.current.cert,
        key: tls.current.key,
        ca: tls.current.ca,
        requestCert: true,
        rejectUnauthorized: false,
      },
      handle,
    );
    stopRenewals = tls.onRenewed((files) =>
      secure.setSecureContext({ cert: files.cert, key: files.key, ca: files.ca }),
    );
    server = secure;
  }
  const sessions = new Set<ServerHttp2Session>();
  let allClosed: (() => void) | undefined;
  server.on("session", (session: ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => {
      sessions.delete(session);
      if (sessions.size === 0) allClosed?.();
    });
  });

  const port = await listenOn(server, options.host, options.port).catch((error: unknown) => {
    stopRenewals?.();
    throw error;
  });

  let closed: Promise<void> | undefined;
  return {
    port,
    close() {
      stopRenewals?.();
      server.close();
      // GOAWAY: calls in flight finish, new ones go elsewhere.
      for (const session of sessions) session.close();
    },
    connectionsClosed() {
      closed ??= new Promise<void>((resolve) => {
        allClosed = resolve;
        if (sessions.size === 0) resolve();
      });
      return closed;
    },
  };
}
