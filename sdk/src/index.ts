/**
 * The shopmesh client SDK: typed clients for every shopmesh service.
 *
 * ```ts
 * import { createClient, createTransport } from "@shopmesh/sdk";
 * import { ProductsService } from "@shopmesh/sdk/products/v1";
 *
 * const products = createClient(ProductsService, createTransport({ target: "127.0.0.1:50052" }));
 * const { products: page } = await products.listProducts({ pageSize: 10 });
 * ```
 *
 * Service descriptors and message types live in one entry point per contract
 * package: `@shopmesh/sdk/users/v1`, `/products/v1`, `/orders/v1`,
 * `/userorders/v1`, `/type/v1` and `/health/v1`.
 */
export { ConnectError, Code } from "@connectrpc/connect";
export { createClient } from "./create-client.js";
export type { Client, CallOptions, Interceptor, Transport } from "@connectrpc/connect";
export { createTransport, type CreateTransportOptions, type TransportKind } from "./create-transport.js";
export { grpcTargetSchemes, isGrpcTarget, isHostAndPort } from "./grpc-target.js";
export {
  createGrpcTransport,
  type GrpcTransport,
  type GrpcTransportOptions,
  type RetryOptions,
} from "./grpc-transport.js";
export { createConnectNodeTransport, type ConnectNodeTransportOptions } from "./connect-node-transport.js";
export { bearerToken, type TokenSource } from "./bearer-token.js";
export { retryPushbackMs } from "./retry-pushback.js";
export { maxSentTimeoutMs } from "./timeout-limit.js";
export { tracingInterceptor } from "./tracing-interceptor.js";
export {
  meshIdentityUri,
  meshServerIdentityCheck,
  meshServiceOf,
  meshTrustDomain,
  type ClientTlsOptions,
} from "./mesh-tls.js";
