import { createGrpcTransport as createConnectGrpcTransport } from "@connectrpc/connect-node";
import type { Interceptor, Transport } from "@connectrpc/connect";
import type { GrpcTransport } from "./grpc-transport.js";

/** Options for {@link createConnectNodeTransport}. */
export interface ConnectNodeTransportOptions {
  /** Server address as `host:port`, for example `127.0.0.1:50052`. */
  target: string;
  /** Connect interceptors, run in order, outermost first. */
  interceptors?: Interceptor[];
}

/**
 * Creates connect-node's own gRPC transport (HTTP/2 in plaintext) for the same
 * target syntax as the grpc-js transport. It needs no grpc-js at all, but
 * spends about twice the CPU per call; prefer `createGrpcTransport` between
 * services.
 */
export function createConnectNodeTransport(options: ConnectNodeTransportOptions): GrpcTransport {
  const baseUrl = `http://${options.target}`;
  const transport: Transport = createConnectGrpcTransport({
    baseUrl,
    interceptors: options.interceptors ?? [],
  });
  return {
    target: options.target,
    unary: transport.unary.bind(transport),
    stream: transport.stream.bind(transport),
    close() {
      // connect-node keeps HTTP/2 sessions in a shared pool that closes idle
      // sessions by itself; there is nothing to release per transport.
    },
  };
}
