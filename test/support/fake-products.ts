import type { ServiceImpl } from "@connectrpc/connect";
import {
  CertificateFiles,
  createLogger,
  hosted,
  mutualTlsServerCredentials,
  type IdentityFiles,
  type RunningServer,
  startServer,
} from "@shopmesh/chassis";
import { ProductsService } from "@shopmesh/sdk/products/v1";

/**
 * A products server in the test's own process, on a real loopback port,
 * whose BatchGetProducts (the one method orders calls) the test writes: for
 * prices or failures the real products service will not give. With `tls`
 * (a mesh's products certificate) it serves TLS as the real one does.
 */
export function startFakeProducts(
  name: string,
  batchGetProducts: ServiceImpl<typeof ProductsService>["batchGetProducts"],
  tls?: IdentityFiles,
): Promise<RunningServer> {
  return startServer({
    credentials:
      tls === undefined
        ? undefined
        : mutualTlsServerCredentials(new CertificateFiles({ ...tls, reloadIntervalMs: 60_000 })),
    config: { host: "127.0.0.1", port: 0, shutdownDelayMs: 0, shutdownGraceMs: 100, maxRequestBytes: 1 << 20 },
    logger: createLogger(name, "silent"),
    services: [
      hosted(ProductsService, {
        createProduct: () => ({}),
        updateProduct: () => ({}),
        getProduct: () => ({}),
        listProducts: () => ({}),
        batchGetProducts,
        async *streamEvents() {},
      }),
    ],
  });
}
