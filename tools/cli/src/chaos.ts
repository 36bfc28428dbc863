import { Code, ConnectError } from "@connectrpc/connect";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { defaultAdminPort, envReader } from "@shopmesh/chassis";
import { createClient, createTransport } from "@shopmesh/sdk";
import { FaultInjectionService, type Fault } from "@shopmesh/sdk/faults/v1";
import {
  durationOption,
  fractionOption,
  parseCommandLine,
  targetOption,
  usageFailure,
  UsageError,
} from "./command-line.js";

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
  --admin HOST:PORT       the service's admin listener (default: npm start's, 127.0.0.1:<service port - 20000>,
                          with the service ports from SHOPMESH_PORT_BASE)

The services must run with FAULT_INJECTION=on (npm start does that). Outside
DEVELOPMENT_MODE=on the admin listener takes only an admin's access token, given
in SHOPMESH_TOKEN.`;

/** Default admin address of a service of the local mesh (`npm start`, moved by SHOPMESH_PORT_BASE). */
function adminAddress(service: (typeof services)[number]): string {
  const base = envReader().int("SHOPMESH_PORT_BASE", 50051, { min: 1024, max: 65532 });
  return `127.0.0.1:${defaultAdminPort(base + services.indexOf(service))}`;
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

/** What one `shopmesh chaos` command line asks for. */
interface ChaosRequest {
  service: (typeof services)[number];
  method: string;
  latencyMs: number;
  slowProbability: number;
  errorRate: number;
  code: string;
  hang: boolean;
  clear: boolean;
  list: boolean;
  /** The admin listener's address: --admin, or the local mesh's. */
  address: string;
  /** Whether --admin named it. */
  addressGiven: boolean;
}

/** Reads the command line; undefined for --help; throws a UsageError when it cannot be used (a ConfigError for a bad SHOPMESH_PORT_BASE). */
function readChaosRequest(args: string[]): ChaosRequest | undefined {
  const { values, positionals } = parseCommandLine({
    args,
    allowPositionals: true,
    options: {
      method: { type: "string", multiple: true },
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
  if (values.help) return undefined;
  const service = positionals[0] as (typeof services)[number] | undefined;
  if (service === undefined) throw new UsageError(`which service? One of ${services.join(", ")}`);
  if (!services.includes(service)) throw new UsageError(`unknown service '${service}' (one of ${services.join(", ")})`);
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}'`);
  const methods = values.method ?? ["*"];
  if (methods.length > 1) throw new UsageError(`--method: one method a command (given ${methods.length})`);
  if (methods[0]!.trim() === "")
    throw new UsageError("--method: a method's name, such as GetProduct (leave it out for every method)");
  // --clear may name the method whose faults to clear; --list takes nothing.
  const faultOptions = {
    latency: values.latency,
    "slow-probability": values["slow-probability"],
    "error-rate": values["error-rate"],
    code: values.code,
    hang: values.hang || undefined,
  };
  const named = (options: Record<string, unknown>) =>
    Object.keys(options).filter((name) => options[name] !== undefined);
  const refused = { list: named({ method: values.method, ...faultOptions }), clear: named(faultOptions) };
  for (const action of ["list", "clear"] as const) {
    if (values[action] && refused[action].length > 0)
      throw new UsageError(`--${action} takes no --${refused[action].join(", --")}`);
  }
  if (values.list && values.clear) throw new UsageError("--list or --clear, not both");
  return {
    service,
    method: methods[0]!,
    latencyMs: durationOption("latency", values.latency, 0),
    slowProbability: fractionOption("slow-probability", values["slow-probability"], 0),
    errorRate: fractionOption("error-rate", values["error-rate"], values.code ? 1 : 0),
    code: values.code ?? "",
    hang: values.hang,
    clear: values.clear,
    list: values.list,
    address: values.admin === undefined ? adminAddress(service) : targetOption("admin", values.admin),
    addressGiven: values.admin !== undefined,
  };
}

/** Runs `shopmesh chaos`; returns the exit code. */
export async function chaos(args: string[]): Promise<number> {
  let request: ChaosRequest | undefined;
  try {
    request = readChaosRequest(args);
  } catch (error) {
    return usageFailure("chaos", error);
  }
  if (request === undefined) {
    process.stdout.write(`${chaosUsage}\n`);
    return 0;
  }
  const { service } = request;
  const { address } = request;
  // Outside development mode the admin listener wants an admin's token.
  const token = envReader().optionalString("SHOPMESH_TOKEN");
  const transport = createTransport({ target: address, ...(token === undefined ? {} : { token }) });
  const client = createClient(FaultInjectionService, transport);
  try {
    let faults: Fault[];
    if (request.list) {
      faults = (await client.listFaults({}, { timeoutMs: 3000 })).faults;
    } else if (request.clear) {
      faults = (await client.clearFaults({ method: request.method === "*" ? "" : request.method }, { timeoutMs: 3000 }))
        .faults;
    } else {
      const fault = {
        method: request.method,
        latency: durationFromMs(request.latencyMs),
        slowProbability: request.slowProbability,
        errorRate: request.errorRate,
        errorCode: request.code,
        hang: request.hang,
      };
      if (request.latencyMs === 0 && fault.errorRate === 0 && !fault.hang) {
        process.stderr.write(
          "shopmesh chaos: nothing to inject: give --latency, --error-rate, --code or --hang (or --clear, --list)\n",
        );
        return 2;
      }
      faults = (await client.setFault({ fault }, { timeoutMs: 3000 })).faults;
    }
    process.stdout.write(`${service} (${address}): ${faults.length === 0 ? "no faults" : ""}\n`);
    for (const fault of faults) process.stdout.write(`  ${describe(fault)}\n`);
    return 0;
  } catch (error) {
    const e = ConnectError.from(error);
    if (e.code === Code.Unavailable) {
      // The usual cause besides a stopped mesh: one started on other ports, which this shell does not know of.
      const movedHint =
        !request.addressGiven && process.env.SHOPMESH_PORT_BASE === undefined
          ? " (if it was started with SHOPMESH_PORT_BASE, set the same here)"
          : "";
      process.stderr.write(
        `shopmesh chaos: cannot reach ${service}' admin listener at ${address}: is \`npm start\` running${movedHint}?\n`,
      );
    } else {
      process.stderr.write(`${service} (${address}): ${e.rawMessage} [${Code[e.code]}]\n`);
    }
    return 1;
  } finally {
    transport.close();
  }
}
