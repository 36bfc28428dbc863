import { experimental } from "@grpc/grpc-js";
import { createTransport, meshServerIdentityCheck, type GrpcTransport, type TransportKind } from "@shopmesh/sdk";
import type { Logger } from "../logger.js";
import { timeDependencyCalls } from "../metrics/client-metrics.js";
import { traceDependencyCalls } from "../tracing/client-tracing.js";
import { tracingEnabled } from "../tracing/tracing-setup.js";
import { CertificateFiles } from "../tls/certificate-files.js";
import type { TlsSettings } from "../tls/tls-settings.js";
import { hideDependencyErrors } from "./dependency-errors.js";

/**
 * The transport one service uses to call another it depends on: the SDK's
 * grpc-js transport, one channel reused by every call, with a reconnect
 * backoff of 100 ms growing to 1 s. A dependency that comes back is then
 * found within about a second, not after grpc-js's default backoff (1 s
 * growing 1.6 times per failed attempt, up to two minutes): the experiment
 * measured orders refusing orders for over 2 s after products was ready.
 * Callers forward their own caller's token per call, so the transport
 * carries none.
 *
 * A failed call's address-bearing detail goes to `logger`, and the calling
 * code gets a message naming only the dependency and the status (see
 * {@link hideDependencyErrors}), so that no internal address reaches a caller
 * through a degradation or a wrapped error. Every request is timed into
 * rpc_client_duration_seconds ({@link timeDependencyCalls}), and, with
 * tracing on, is a client span that carries the trace to the dependency
 * ({@link traceDependencyCalls}).
 *
 * With TLS on, the transport presents this service's own certificate
 * (mutual TLS: the dependency knows who calls) and accepts the dependency
 * only if its certificate names `service`; renewed files are read again
 * like the server's (TLS_RELOAD_INTERVAL).
 */
export function createDependencyTransport(
  target: string,
  logger: Logger,
  options: {
    service: string;
    tls: TlsSettings;
    /**
     * connect-node's gRPC client instead of grpc-js, for measuring the stack
     * connect-es users would build; it reads the certificate files once,
     * without following renewals.
     */
    kind?: TransportKind;
  },
): GrpcTransport {
  const files = options.tls.mode === "off" ? undefined : new CertificateFiles(options.tls, logger);
  const transport =
    options.kind === "connect-node"
      ? createTransport({
          kind: "connect-node",
          target,
          tls: files === undefined ? undefined : { ...files.current, service: options.service },
        })
      : grpcJsTransport(target, options.service, files);
  const timed = timeDependencyCalls(hideDependencyErrors(transport, logger));
  return tracingEnabled() ? traceDependencyCalls(timed) : timed;
}

function grpcJsTransport(target: string, service: string, files: CertificateFiles | undefined): GrpcTransport {
  return createTransport({
    target,
    credentials:
      files === undefined
        ? undefined
        : experimental.createCertificateProviderChannelCredentials(files, files, {
            checkServerIdentity: meshServerIdentityCheck(service),
          }),
    channelOptions: {
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 1000,
      // The dependency is asked for by its service name (its certificate's DNS name), never by address.
      ...(files === undefined ? {} : { "grpc.ssl_target_name_override": service }),
    },
  });
}
