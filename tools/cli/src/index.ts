export { entryOf, LocalMesh, serviceNames, type LocalMeshOptions, type ServiceName } from "./mesh/local-mesh.js";
