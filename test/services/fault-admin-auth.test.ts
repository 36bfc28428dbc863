// With FAULT_INJECTION=on outside development mode, the loopback admin
// listener takes only an admin's token: a local process is not trusted to
// break a production service just because it runs on the same host.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { FaultInjectionService } from "@shopmesh/sdk/faults/v1";
import { failure } from "../support/failure.js";
import { adminToken, signUpCustomer, TestMesh } from "../support/mesh.js";

let mesh: TestMesh;
const transports: GrpcTransport[] = [];
beforeAll(async () => {
  mesh = await TestMesh.start(["users", "products"], {
    users: { FAULT_INJECTION: "on", DEVELOPMENT_MODE: "off" },
    products: { FAULT_INJECTION: "on" },
  });
});
afterAll(async () => {
  for (const transport of transports) transport.close();
  await mesh?.stop();
});

function faultsOf(service: "users" | "products", token?: string) {
  const transport = createTransport({
    target: `127.0.0.1:${mesh.processes.get(service)!.adminPort}`,
    ...(token === undefined ? {} : { token }),
  });
  transports.push(transport);
  return createClient(FaultInjectionService, transport);
}

describe("the fault-injection admin listener outside development mode", () => {
  it("refuses a call without a token (UNAUTHENTICATED) and a customer's (PERMISSION_DENIED)", async () => {
    expect((await failure(faultsOf("users").listFaults({}))).code).toBe(Code.Unauthenticated);
    const customer = await signUpCustomer(mesh, "chaos");
    expect((await failure(faultsOf("users", customer.token).listFaults({}))).code).toBe(Code.PermissionDenied);
    expect((await failure(faultsOf("users", customer.token).clearFaults({}))).code).toBe(Code.PermissionDenied);
  });

  it("takes an admin's calls", async () => {
    const { faults } = await faultsOf("users", await adminToken(mesh)).listFaults({});
    expect(faults).toEqual([]);
  });

  it("needs no token in development mode, as on a local mesh", async () => {
    expect((await faultsOf("products").listFaults({})).faults).toEqual([]);
  });
});
