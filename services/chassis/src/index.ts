export { ConfigError, envReader, parseDurationMs, readServerConfig, type EnvReader, type ServerConfig } from "./config.js";
export { createLogger, type Logger } from "./logger.js";
export { runService, type RunServiceOptions, type ServiceSetup } from "./run-service.js";
export { hostService, type CallRecord, type HostOptions } from "./server/host-service.js";
export { HealthRegistry, ServingStatus } from "./server/health.js";
export { addReflection } from "./server/reflection.js";
export { hosted, startServer, type HostedService, type RunningServer, type StartServerOptions } from "./server/service-server.js";
export { statusName } from "./server/call-status.js";
