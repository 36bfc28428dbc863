export {
  ConfigError,
  defaultAdminPort,
  defaultAdmissionConfig,
  defaultConnectionConfig,
  envReader,
  maxTimerMs,
  parseDurationMs,
  readServerConfig,
  targetForm,
  type AdmissionConfig,
  type ConnectionConfig,
  type EnvReader,
  type ServerConfig,
} from "./config.js";
export { defaultHttpPort, readHttpConfig, type HttpConfig } from "./http-config.js";
export { createLogger, type Logger } from "./logger.js";
export { runService, type RunServiceOptions, type ServiceSetup } from "./run-service.js";
export {
  admissionWaitMs,
  hostService,
  peerAddress,
  serverStopping,
  type CallRecord,
  type HostOptions,
} from "./server/host-service.js";
export { HealthRegistry, ServingStatus } from "./server/health.js";
export { addReflection } from "./server/reflection.js";
export {
  hosted,
  startServer,
  type HostedService,
  type RunningServer,
  type StartServerOptions,
} from "./server/service-server.js";
export { statusName } from "./server/call-status.js";
export { adminOnlyInterceptor, authInterceptor, type AuthOptions } from "./auth/auth-interceptor.js";
export {
  CallPeerIdentity,
  peerIdentityKey,
  requirePeerService,
  type CallAuthContext,
  type PeerIdentity,
} from "./auth/peer-identity.js";
export { readTlsFiles, readTlsSettings, type TlsFiles, type TlsSettings } from "./tls/tls-settings.js";
export { CertificateFiles, mutualTlsServerCredentials } from "./tls/certificate-files.js";
export {
  ensureDevelopmentCertificates,
  issueHostCertificate,
  type DevelopmentCertificates,
  type HostCertificateRequest,
  type IdentityFiles,
} from "./tls/development-ca.js";
export { defaultKeyFiles, ensureKeyPair, readPem, type KeyPairFiles } from "./auth/keys.js";
export {
  principalKey,
  requireAdmin,
  requirePerson,
  requirePrincipal,
  requireSelfOrAdmin,
  type Principal,
} from "./auth/principal.js";
export {
  createTokenSigner,
  createTokenVerifier,
  tokenAlgorithm,
  tokenAudience,
  tokenIssuer,
  type TokenClaims,
  type TokenSigner,
  type TokenVerifier,
} from "./auth/tokens.js";
export { openDatabase, type OpenDatabase, type OpenDatabaseOptions } from "./db/open-database.js";
export { fitsInt64, int64, int64Max, int64Min } from "./db/int64-column.js";
export { prepareExactRows, type ExactRows } from "./db/exact-rows.js";
export { RowCache, type RowCacheOptions } from "./db/row-cache.js";
export { PageIdsCache, type PageIdsCacheOptions } from "./db/page-ids-cache.js";
export { isUuid, newId } from "./ids.js";
export {
  checkCurrencyCode,
  checkId,
  checkIds,
  checkKey,
  checkPageSize,
  checkRange,
  checkText,
  decodePageToken,
  encodePageToken,
  invalidArgument,
} from "./validation.js";
export {
  loadTokenVerifier,
  loadUnnamedKey,
  readDatabasePath,
  readDataDir,
  readDevelopmentMode,
  readKeyRefreshIntervalMs,
} from "./auth/auth-config.js";
export {
  createKeySetVerifier,
  defaultMinKeyRefreshIntervalMs,
  type KeySetVerifier,
  type KeySetVerifierOptions,
  type PublishedKey,
} from "./auth/key-set-verifier.js";
export { downstreamTimeoutMs } from "./deadline.js";
export { FaultRegistry, parseFaultsEnv, toFault, toFaultRule, type FaultRule } from "./faults/fault-registry.js";
export { createFaultInjectionService } from "./faults/fault-injection-service.js";
export {
  EventLog,
  readEventStreamOptions,
  type EventStreamMessage,
  type EventStreamOptions,
  type FollowOptions,
} from "./events/event-log.js";
export { defaultStreamLimits, StreamSlots, type StreamLimits } from "./events/stream-slots.js";
export { streamEventsHandler } from "./events/stream-events.js";
export {
  natsEventNames,
  outboxSequenceHeader,
  readEventsRelayConfig,
  readNatsSettings,
  type EventsRelayConfig,
  type NatsEventNames,
  type NatsSettings,
} from "./events/nats-settings.js";
// The relay itself loads the NATS client: import it from
// "@shopmesh/chassis/nats-relay" where it is used (runService loads it only
// when EVENTS_RELAY=nats).
export type { NatsRelay, NatsRelayOptions } from "./events/nats-relay.js";
export { createDependencyTransport } from "./client/dependency-transport.js";
export {
  collectProcessMetrics,
  degradations,
  hedges,
  metricsRegistry,
  retries,
  trackBreaker,
  trackProjection,
  type BreakerStateName,
  type StreamProgress,
} from "./metrics/service-metrics.js";
export { withAttempt, type RequestAttempt } from "./tracing/tracer.js";
export { addSpanEvent } from "./tracing/span-clock.js";
export { startTracing, tracingEnabled, type StartTracingOptions, type Tracing } from "./tracing/tracing-setup.js";
export { serverTracingInterceptor } from "./tracing/server-tracing.js";
export { traceDependencyCalls } from "./tracing/client-tracing.js";
export { inEventSpan, linksTo, type ProducerTraceContext } from "./tracing/event-tracing.js";
export {
  defaultMetricsPort,
  readMetricsConfig,
  startMetricsListener,
  type MetricsConfig,
  type MetricsListener,
} from "./metrics/metrics-listener.js";
export { isOutageCode } from "./client/dependency-errors.js";
