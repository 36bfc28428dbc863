import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { FaultInjectionService } from "@shopmesh/sdk/faults/v1";
import { toFault, toFaultRule, type FaultRegistry } from "./fault-registry.js";

/** The admin RPC that changes a registry's faults; refused unless fault injection is enabled. */
export function createFaultInjectionService(registry: FaultRegistry): ServiceImpl<typeof FaultInjectionService> {
  const requireEnabled = () => {
    if (!registry.enabled) {
      throw new ConnectError(
        "fault injection is disabled; start the service with FAULT_INJECTION=on",
        Code.FailedPrecondition,
      );
    }
  };
  const faults = () => registry.list().map(toFault);
  return {
    setFault(request) {
      requireEnabled();
      if (!request.fault) throw new ConnectError("fault: is required", Code.InvalidArgument);
      registry.set(toFaultRule(request.fault));
      return { faults: faults() };
    },
    clearFaults(request) {
      requireEnabled();
      registry.clear(request.method);
      return { faults: faults() };
    },
    listFaults() {
      requireEnabled();
      return { faults: faults() };
    },
  };
}
