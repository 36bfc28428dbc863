/**
 * Plumbing the shopmesh chassis shares with the SDK's grpc-js transport:
 * header and metadata conversion, interceptor chaining, method paths and
 * message encoding.
 *
 * Not public: this entry point exists only inside the repository (the
 * published package's "exports" leave it out), and it may change in any
 * release.
 *
 * @internal
 * @packageDocumentation
 */
export { applyInterceptors } from "./interceptors.js";
export { headersToMetadata, metadataToHeaders, type HeadersLike } from "./metadata.js";
export { encodeMessage } from "./message-buffer.js";
export { methodPath } from "./method-path.js";
