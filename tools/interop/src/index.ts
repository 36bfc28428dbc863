export { clientCaseNames, runClientCases, type ClientCaseName, type ClientCaseResult } from "./client-cases.js";
