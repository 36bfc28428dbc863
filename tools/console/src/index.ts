export {
  startConsole,
  type ConsoleOptions,
  type RunningConsole,
  type ServiceEndpoints,
} from "./server/console-server.js";
export {
  consoleTracingEnv,
  defaultConsolePort,
  startMeshConsole,
  type MeshConsoleOptions,
} from "./server/mesh-console.js";
export { ensurePageBuilt, pageDir } from "./server/page-build.js";
export type * from "./summary-types.js";
