import { ConnectError } from "@connectrpc/connect";
import type { Fault } from "@shopmesh/sdk/faults/v1";
import { useEffect, useMemo, useState } from "preact/hooks";
import { type MeshService, meshServices } from "../summary-types.js";
import { faultsOf } from "./clients.js";

const codes = ["UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "RESOURCE_EXHAUSTED", "UNKNOWN", "PERMISSION_DENIED"];

function describe(fault: Fault): string {
  const latencyMs = fault.latency ? Number(fault.latency.seconds) * 1000 + fault.latency.nanos / 1e6 : 0;
  const parts: string[] = [];
  if (fault.hang) parts.push("hang");
  if (latencyMs > 0) parts.push(`+${latencyMs} ms`);
  if (fault.errorRate > 0) parts.push(`${Math.round(fault.errorRate * 100)} % ${fault.errorCode}`);
  return `${fault.method === "*" ? "all methods" : fault.method}: ${parts.join(", ") || "nothing"}`;
}

function ServiceFaults({ service, enabled, up }: { service: MeshService; enabled: boolean; up: boolean }) {
  const [latencyMs, setLatencyMs] = useState(0);
  const [errorPercent, setErrorPercent] = useState(0);
  const [code, setCode] = useState("UNAVAILABLE");
  const [hang, setHang] = useState(false);
  const [inForce, setInForce] = useState<string>("–");
  const [problem, setProblem] = useState<string | undefined>();
  const client = useMemo(() => faultsOf(service), [service]);
  const show = (faults: Fault[]) => setInForce(faults.length === 0 ? "none" : faults.map(describe).join("; "));
  const run = async (call: () => Promise<{ faults: Fault[] }>) => {
    try {
      show((await call()).faults);
      setProblem(undefined);
    } catch (error) {
      setProblem(ConnectError.from(error).message);
    }
  };
  useEffect(() => {
    if (enabled && up) void run(() => client.listFaults({}, { timeoutMs: 2000 }));
  }, [enabled, up]);
  const id = (what: string) => `${what}-${service}`;
  return (
    <fieldset class="service-faults" disabled={!enabled}>
      <legend>{service}</legend>
      <label for={id("latency")}>Latency (ms)</label>
      <input
        id={id("latency")}
        type="number"
        min={0}
        max={10000}
        step={50}
        value={latencyMs}
        onInput={(e) => setLatencyMs(Number(e.currentTarget.value))}
      />
      <label for={id("errors")}>Errors (%)</label>
      <input
        id={id("errors")}
        type="number"
        min={0}
        max={100}
        step={5}
        value={errorPercent}
        onInput={(e) => setErrorPercent(Number(e.currentTarget.value))}
      />
      <label for={id("code")}>Code</label>
      <select id={id("code")} value={code} onChange={(e) => setCode(e.currentTarget.value)}>
        {codes.map((c) => (
          <option key={c} value={c}>
            {c}
          </option>
        ))}
      </select>
      <label class="check">
        <input type="checkbox" checked={hang} onChange={(e) => setHang(e.currentTarget.checked)} /> Hang
      </label>
      <div class="buttons">
        <button
          type="button"
          onClick={() =>
            void run(() =>
              // Nothing to inject: the services refuse such a fault, and applying it means having none.
              latencyMs === 0 && errorPercent === 0 && !hang
                ? client.clearFaults({ method: "*" }, { timeoutMs: 2000 })
                : client.setFault(
                    {
                      fault: {
                        method: "*",
                        latency: { seconds: BigInt(Math.floor(latencyMs / 1000)), nanos: (latencyMs % 1000) * 1e6 },
                        errorRate: errorPercent / 100,
                        errorCode: code,
                        hang,
                      },
                    },
                    { timeoutMs: 2000 },
                  ),
            )
          }
        >
          Apply to {service}
        </button>
        <button
          type="button"
          onClick={() =>
            void run(async () => {
              const left = await client.clearFaults({}, { timeoutMs: 2000 });
              setLatencyMs(0);
              setErrorPercent(0);
              setHang(false);
              return left;
            })
          }
        >
          Clear {service}
        </button>
      </div>
      <p class="in-force" data-testid={`faults-${service}`} aria-live="polite">
        {problem !== undefined ? <span class="error">{problem}</span> : `In force: ${inForce}`}
      </p>
    </fieldset>
  );
}

/** Fault injection per service, through the console's relay to each service's loopback admin listener. */
export function ChaosPanel({ admin, up }: { admin: boolean; up: (service: MeshService) => boolean }) {
  return (
    <div class="chaos">
      {!admin && <p class="note">Sign in as an admin to inject faults.</p>}
      <div class="chaos-grid">
        {meshServices.map((service) => (
          <ServiceFaults key={service} service={service} enabled={admin} up={up(service)} />
        ))}
      </div>
    </div>
  );
}
