import type { Interceptor } from "@connectrpc/connect";
import { createLogger, hosted, startServer, type RunningServer } from "@shopmesh/chassis";
import { EchoService } from "../../../../gen/shopmesh/echo/v1/echo_pb.js";
import { createEchoService, type Observation } from "./echo-service.js";

/** An echo server in the test process, listening on a free loopback port. */
export interface LoopbackEchoServer {
  readonly server: RunningServer;
  /** Every call the echo handlers saw, in order. */
  readonly observations: Observation[];
  /** The observation of the call that sent `message`; throws when there is none. */
  observed(message: string): Observation;
}

/** Options for {@link startEchoServer}. */
export interface EchoServerOptions {
  interceptors?: Interceptor[];
  maxRequestBytes?: number;
  shutdownGraceMs?: number;
}

/**
 * Starts the steerable echo service with the chassis's startServer on
 * 127.0.0.1 port 0: real gRPC over loopback, in the test process so that the
 * tests can read what the handlers observed.
 */
export async function startEchoServer(options: EchoServerOptions = {}): Promise<LoopbackEchoServer> {
  const observations: Observation[] = [];
  const server = await startServer({
    config: {
      host: "127.0.0.1",
      port: 0,
      shutdownDelayMs: 0,
      shutdownGraceMs: options.shutdownGraceMs ?? 2_000,
      maxRequestBytes: options.maxRequestBytes ?? 1024 * 1024,
    },
    logger: createLogger("echo-test", "silent"),
    services: [hosted(EchoService, createEchoService(observations))],
    interceptors: options.interceptors,
  });
  return {
    server,
    observations,
    observed(message) {
      const found = observations.filter((observation) => observation.message === message);
      if (found.length !== 1)
        throw new Error(`expected one call with message ${JSON.stringify(message)}, saw ${found.length}`);
      return found[0]!;
    },
  };
}
