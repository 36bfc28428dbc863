import { parseArgs } from "node:util";
import { ConnectError } from "@connectrpc/connect";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { parseDurationMs } from "@shopmesh/chassis";
import { createClient, createTransport } from "@shopmesh/sdk";
import { FaultInjectionService, type Fault } from "@shopmesh/sdk/faults/v1";

const services = ["users", "products", "orders", "user-orders"] as const;

export const chaosUsage = `usage: shopmesh chaos <service> [--method NAME] [fault options] | --clear | --list

  <service>               ${services.join(", ")}
  --method NAME           the method to affect, e.g. GetProduct (default: every method)
  --latency 300ms         add this delay to calls
  --slow-probability P    add the delay to this fraction of calls only (a slow tail)
  --error-rate R          fail this fraction of calls
  --code CODE             status code of those failures (default UNAVAILABLE)
  --hang                  never answer: calls wait for their deadline
  --clear                 remove the fault of --method, or every fault
  --list                  show the faults in force
  --admin HOST:PORT       the service's admin listener (default 127.0.0.1:<service port + 1000>)

The services must run with FAULT_INJECTION=on (npm start does that).`;

/** Default admin address of a service of the local mesh. */
function adminAddress(service: (typeof services)[number]): string {
  const base = Number(process.env.SHOPMESH_PORT_BASE ?? 50051);
  return `127.0.0.1:${base + services.indexOf(service) + 1000}`;
}

function describe(fault: Fault): string {
  const parts: string[] = [];
  const latencyMs = fault.latency ? Number(fault.latency.seconds) * 1000 + fault.latency.nanos / 1e6 : 0;
  if (latencyMs > 0) {
    parts.push(`+${latencyMs}ms${fault.slowProbability > 0 ? ` on ${fault.slowProbability * 100}% of calls` : ""}`);
  }
  if (fault.errorRate > 0) parts.push(`${fault.errorCode} on ${fault.errorRate * 100}% of calls`);
  if (fault.hang) parts.push("hang");
  return `${fault.method === "*" ? "every method" : fault.method}: ${parts.join(", ") || "nothing"}`;
}

/** Runs `shopmesh chaos`; returns the exit code. */
export async function chaos(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      method: { type: "string", default: "*" },
      latency: { type: "string" },
      "slow-probability": { type: "string" },
      "error-rate": { type: "string" },
      code: { type: "string" },
      hang: { type: "boolean", default: false },
      clear: { type: "boolean", default: false },
      list: { type: "boolean", default: false },
      admin: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const service = positionals[0] as (typeof services)[number] | undefined;
  if (values.help || !service || !services.includes(service) || positionals.length > 1) {
    process.stderr.write(`${chaosUsage}\n`);
    return values.help ? 0 : 2;
  }
  const latencyMs = values.latency === undefined ? 0 : parseDurationMs(values.latency);
  if (latencyMs === undefined) {
    process.stderr.write(`--latency: "${values.latency}" is not a duration such as 300ms or 2s\n`);
    return 2;
  }
  const address = values.admin ?? adminAddress(service);
  const transport = createTransport({ target: address });
  const client = createClient(FaultInjectionService, transport);
  try {
    let faults: Fault[];
    if (values.list) {
      faults = (await client.listFaults({}, { timeoutMs: 3000 })).faults;
    } else if (values.clear) {
      faults = (await client.clearFaults({ method: values.method === "*" ? "" : values.method }, { timeoutMs: 3000 })).faults;
    } else {
      const fault = {
        method: values.method,
        latency: durationFromMs(latencyMs),
        slowProbability: Number(values["slow-probability"] ?? 0),
        errorRate: Number(values["error-rate"] ?? (values.code ? 1 : 0)),
        errorCode: values.code ?? "",
        hang: values.hang,
      };
      if (fault.latency.seconds === 0n && fault.latency.nanos === 0 && fault.errorRate === 0 && !fault.hang) {
        process.stderr.write("nothing to inject: give --latency, --error-rate, --code or --hang (or --clear, --list)\n");
        return 2;
      }
      faults = (await client.setFault({ fault }, { timeoutMs: 3000 })).faults;
    }
    process.stdout.write(`${service} (${address}): ${faults.length === 0 ? "no faults" : ""}\n`);
    for (const fault of faults) process.stdout.write(`  ${describe(fault)}\n`);
    return 0;
  } catch (error) {
    const e = ConnectError.from(error);
    process.stderr.write(`${service} (${address}): ${e.rawMessage} [${e.code}]\n`);
    return 1;
  } finally {
    transport.close();
  }
}
