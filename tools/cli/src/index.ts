export { entryOf, LocalMesh, serviceNames, type LocalMeshOptions, type ServiceName } from "./mesh/local-mesh.js";
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
