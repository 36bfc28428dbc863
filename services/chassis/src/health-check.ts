// Asks a service on this host whether it is SERVING, over grpc.health.v1:
// what a container's HEALTHCHECK runs (compiled, with plain node).
//
//   node services/chassis/dist/health-check.js [--target host:port] [--service name] [--timeout-ms n]
//
// By default it asks 127.0.0.1 on HEALTH_PORT, the plaintext health listener;
// with no HEALTH_PORT, on PORT when TLS=off. Exits 0 when SERVING, 1 when the
// service answers anything else or does not answer, 2 on bad arguments.
import { parseArgs } from "node:util";
import { create, fromBinary } from "@bufbuild/protobuf";
import { Client, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "@shopmesh/sdk/health/v1";
import { encodeMessage } from "@shopmesh/sdk/internal";
import { ConfigError, envReader } from "./config.js";

function target(env: NodeJS.ProcessEnv): string {
  const read = envReader(env);
  const health = read.optionalString("HEALTH_PORT");
  if (health !== undefined && health.toLowerCase() !== "off")
    return `127.0.0.1:${read.int("HEALTH_PORT", 0, { min: 1, max: 65_535 })}`;
  if (read.bool("TLS", true))
    throw new ConfigError(
      "HEALTH_PORT",
      health ?? "",
      "the plaintext health port the service listens on (or --target)",
    );
  return `127.0.0.1:${read.int("PORT", 0, { min: 1, max: 65_535 })}`;
}

async function check(address: string, service: string, timeoutMs: number): Promise<HealthCheckResponse> {
  const client = new Client(address, credentials.createInsecure());
  try {
    return await new Promise<HealthCheckResponse>((resolve, reject) => {
      client.makeUnaryRequest(
        "/grpc.health.v1.Health/Check",
        (request: HealthCheckRequest) => encodeMessage(HealthCheckRequestSchema, request),
        (bytes: Buffer) => fromBinary(HealthCheckResponseSchema, bytes),
        create(HealthCheckRequestSchema, { service }),
        new Metadata(),
        { deadline: Date.now() + timeoutMs },
        (error: ServiceError | null, response?: HealthCheckResponse) =>
          error || !response ? reject(error ?? new Error("no response")) : resolve(response),
      );
    });
  } finally {
    client.close();
  }
}

let address: string;
let service: string;
let timeoutMs: number;
try {
  const { values } = parseArgs({
    options: {
      target: { type: "string" },
      service: { type: "string", default: "" },
      "timeout-ms": { type: "string", default: "2000" },
    },
  });
  address = values.target ?? target(process.env);
  service = values.service;
  timeoutMs = Number(values["timeout-ms"]);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1)
    throw new ConfigError("--timeout-ms", values["timeout-ms"], "a whole number of milliseconds");
} catch (error) {
  process.stderr.write(`health-check: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
}
try {
  const { status } = await check(address, service, timeoutMs);
  process.stdout.write(`${address} ${service || "(server)"}: ${ServingStatus[status]}\n`);
  process.exit(status === ServingStatus.SERVING ? 0 : 1);
} catch (error) {
  process.stdout.write(`${address} ${service || "(server)"}: ${(error as Error).message}\n`);
  process.exit(1);
}
