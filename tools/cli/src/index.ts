export { entryOf, LocalMesh, serviceNames, type LocalMeshOptions, type ServiceName } from "./mesh/local-mesh.js";
export { sourceHeads, waitForProjection, type ProjectionWait, type SourceName } from "./mesh/projection-progress.js";
