import type { Server, ServiceDefinition } from "@grpc/grpc-js";
import { fromBinary, type DescMessage, type DescMethod, type DescService, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { encodeMessage, methodPath } from "@shopmesh/sdk/internal";
import { bidiStreamingHandler } from "./bidi-streaming-handler.js";
import { clientStreamingHandler } from "./client-streaming-handler.js";
import type { AnyImpl, HostOptions } from "./host-options.js";
import { safeDeserializer } from "./request-decoding.js";
import { serverStreamingHandler } from "./server-streaming-handler.js";
import { unaryHandler } from "./unary-handler.js";

export { admissionWaitMs, peerAddress, serverStopping } from "./call-context.js";
export { RunningCalls, type CallRecord, type HostOptions } from "./host-options.js";

/**
 * Hosts a Connect service implementation on a grpc-js server. Handlers are
 * plain objects typed by the generated service descriptor, exactly as with
 * Connect's own router, so the same implementation runs in memory in unit
 * tests (createRouterTransport) and on grpc-js in production.
 *
 * All four kinds of method are hosted: unary, server-streaming,
 * client-streaming and bidi, streams being async iterables in and out. Each
 * call gets a HandlerContext (call-context.ts): the gRPC deadline becomes
 * `timeoutMs()` and aborts `signal` when it passes, client cancellation aborts
 * `signal`, request metadata becomes `requestHeader`, and `responseHeader` and
 * `responseTrailer` are sent back. A thrown ConnectError ends the call with its
 * code and message; any other error ends it with INTERNAL. A request message
 * that cannot be decoded is answered with INVALID_ARGUMENT before the
 * implementation sees it (by the call gate, for streaming requests). Unary
 * calls take an admission slot; streaming calls are bounded per connection
 * instead (see callGate). A method the implementation leaves out answers
 * UNIMPLEMENTED, after the interceptors, as with Connect's router.
 */
export function hostService<S extends DescService>(
  server: Pick<Server, "addService">,
  service: S,
  impl: Partial<ServiceImpl<S>>,
  options: HostOptions = {},
): void {
  const definition: Record<string, ServiceDefinition[string]> = {};
  const handlers: Record<string, unknown> = {};
  const implementations = impl as unknown as Record<string, AnyImpl | undefined>;
  for (const method of service.methods) {
    const fn = implementations[method.localName];
    const bound = typeof fn === "function" ? fn.bind(impl) : unimplemented(method);
    // grpc-js finds each handler under the same key as its definition.
    definition[method.localName] = {
      path: methodPath(method),
      originalName: method.localName,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: (value: MessageShape<DescMessage>) => encodeMessage(method.input, value),
      requestDeserialize: safeDeserializer(method.input.typeName, (bytes: Buffer) => fromBinary(method.input, bytes)),
      responseSerialize: (value: MessageShape<DescMessage>) => encodeMessage(method.output, value),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
    };
    handlers[method.localName] = handlerFor(method, bound, options);
  }
  server.addService(definition, handlers as never);
}

function handlerFor(method: DescMethod, impl: AnyImpl, options: HostOptions): unknown {
  switch (method.methodKind) {
    case "unary":
      return unaryHandler(method, impl, options);
    case "server_streaming":
      return serverStreamingHandler(method, impl, options);
    case "client_streaming":
      return clientStreamingHandler(method, impl, options);
    case "bidi_streaming":
      return bidiStreamingHandler(method, impl, options);
  }
}

function unimplemented(method: DescMethod): AnyImpl {
  const message = `${method.parent.typeName}.${method.name} is not implemented`;
  return () => {
    throw new ConnectError(message, Code.Unimplemented);
  };
}
