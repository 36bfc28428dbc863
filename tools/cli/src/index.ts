export {
  entryOf,
  failedStartGraceMs,
  LocalMesh,
  serviceNames,
  type LocalMeshOptions,
  type ServiceName,
} from "./mesh/local-mesh.js";
export {
  sourceHeads,
  waitForProjection,
  type MeshAccess,
  type ProjectionWait,
  type DependencyName,
} from "./mesh/projection-progress.js";
export {
  busyPortLines,
  ephemeralPortRange,
  findBusyPorts,
  portHolder,
  portIsFree,
  type BusyPort,
  type PortHolder,
  type PortNeed,
} from "./mesh/port-check.js";
export { parseCommandLine, usageFailure, UsageError } from "./command-line.js";
export { demoAccounts, seedOnce, type SeedRecord } from "./mesh/demo-seed.js";
export { RestartOnExit, defaultRestartPolicy, type RestartEvents, type RestartPolicy } from "./mesh/restart-on-exit.js";
export {
  spawnService,
  type ServiceProcess,
  type SpawnServiceOptions,
  type StopOptions,
} from "./process/spawn-service.js";
export { readCpuMicros, readRssBytes } from "./process/proc-stats.js";
export {
  readOtlpBody,
  spansOf,
  startOtlpReceiver,
  type OtlpReceiver,
  type ReceivedSpan,
} from "./tracing/otlp-receiver.js";
export { waterfallRows, type WaterfallRow, type WaterfallEvent } from "./experiment/waterfall-chart.js";
export { parsePrometheusText, type Sample } from "./prometheus-text.js";
