export { runClientCases } from "./client-cases.js";
export { createTestService, echoInitialKey, echoTrailingKey, maxPayloadBytes } from "./test-service.js";
export { interopCases, runGoClientCase, runGoClientCases, type CaseResult, type InteropCase } from "./interop-cases.js";
export { findInteropPrograms, type InteropPrograms } from "./interop-programs.js";
export { freePort, waitUntilAccepting } from "./free-port.js";
export { formatRows, type Row } from "./result-table.js";
