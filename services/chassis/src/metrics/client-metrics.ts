import type { DescService } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import type { GrpcTransport } from "@shopmesh/sdk";
import { dependencyName } from "../client/dependency-errors.js";
import { ObserverCache, okCode } from "./rpc-metrics.js";
import { rpcClientDuration } from "./service-metrics.js";

const byDependency = new Map<string, ObserverCache>();

function durationsFor(service: DescService): ObserverCache {
  const dependency = dependencyName(service);
  let cache = byDependency.get(dependency);
  if (cache === undefined) {
    cache = new ObserverCache(rpcClientDuration, { dependency });
    byDependency.set(dependency, cache);
  }
  return cache;
}

/**
 * Wraps the transport to a dependency so that every unary request it sends
 * is timed into rpc_client_duration_seconds with its status code: each retry
 * and each hedge is a request of its own, and a hedge that lost the race
 * ends CANCELLED. Streams (the projection's event streams, open for hours)
 * are not timed. A wrapper, not an interceptor, for the reason given at
 * hideDependencyErrors.
 */
export function timeDependencyCalls(transport: GrpcTransport): GrpcTransport {
  return {
    target: transport.target,
    close: () => transport.close(),
    unary: async (method, signal, timeoutMs, header, message, contextValues) => {
      const started = performance.now();
      const durations = durationsFor(method.parent);
      try {
        const response = await transport.unary(method, signal, timeoutMs, header, message, contextValues);
        durations.observe(method, okCode, (performance.now() - started) / 1000);
        return response;
      } catch (error) {
        durations.observe(method, ConnectError.from(error).code, (performance.now() - started) / 1000);
        throw error;
      }
    },
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      transport.stream(method, signal, timeoutMs, header, input, contextValues),
  };
}
