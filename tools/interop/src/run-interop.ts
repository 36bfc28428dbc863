// npm run interop: gRPC's cross-language interop suite, both ways.
//
// 1. Server side: grpc.testing.TestService on the chassis (./main.ts, its own
//    process on a free port) against grpc-go's interop client, every case
//    that needs no credentials.
// 2. Client side: the SDK's transports (grpc-js and connect-node) run the
//    same cases against grpc-go's interop server and against the chassis
//    TestService.
//
// The programs come from GRPC_INTEROP_CLIENT and GRPC_INTEROP_SERVER. Prints
// one row per case and exits 1 on any failure, or when a program is missing.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { spawnService, type ServiceProcess } from "@shopmesh/cli";
import { runClientCases } from "./client-cases.js";
import { freePort, waitUntilAccepting } from "./free-port.js";
import { interopCases, runGoClientCases, type CaseResult } from "./interop-cases.js";
import { findInteropPrograms } from "./interop-programs.js";
import { formatRows, type Row } from "./result-table.js";

const host = "127.0.0.1";
const serverEntry = fileURLToPath(new URL("./main.ts", import.meta.url));

const programs = findInteropPrograms();
if ("problems" in programs) {
  for (const problem of programs.problems) console.error(`interop: ${problem}`);
  console.error("interop: see the README's Interop section for where to get grpc-go's interop programs");
  process.exit(1);
}

const rows: Row[] = [];
const add = (server: string, client: string, results: CaseResult[]) => {
  for (const result of results) rows.push({ server, client, ...result });
};

const chassis: ServiceProcess = await spawnService({ entry: serverEntry, keepLogs: false, env: { TLS: "off" } });
let goServer: ReturnType<typeof spawn> | undefined;
const stopAll = async () => {
  goServer?.kill("SIGTERM");
  await Promise.all([chassis.stop(), goServer && goServer.exitCode === null ? once(goServer, "exit") : undefined]);
};
process.once("SIGINT", () => void stopAll().then(() => process.exit(130)));

try {
  add(
    "chassis TestService",
    "grpc-go",
    await runGoClientCases({ client: programs.client, host, port: chassis.port }, interopCases),
  );

  const port = await freePort(host);
  goServer = spawn(programs.server, ["-port", String(port)], { stdio: ["ignore", "ignore", "inherit"] });
  await waitUntilAccepting(host, port, { exited: once(goServer, "exit") });
  for (const kind of ["grpc-js", "connect-node"] as const) {
    add("grpc-go", `SDK ${kind}`, await runClientCases({ host, port, kind }));
    add("chassis TestService", `SDK ${kind}`, await runClientCases({ host, port: chassis.port, kind }));
  }
} finally {
  await stopAll();
}

console.log(formatRows(rows));
const failed = rows.filter((row) => !row.ok).length;
console.log(failed === 0 ? `all ${rows.length} passed` : `${failed} of ${rows.length} failed`);
process.exit(failed === 0 ? 0 : 1);
