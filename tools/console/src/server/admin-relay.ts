import type { IncomingMessage, ServerResponse } from "node:http";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { TokenVerifier } from "@shopmesh/chassis";
import { createClient, createTransport } from "@shopmesh/sdk";
import { FaultInjectionService } from "@shopmesh/sdk/faults/v1";
import { type MeshService, meshServices } from "../summary-types.js";

/** The admin's token of a call, checked: UNAUTHENTICATED without a valid one, PERMISSION_DENIED for a customer. */
export async function requireAdminToken(authorization: string | null | undefined, verifier: TokenVerifier) {
  const token = /^Bearer (\S+)$/i.exec(authorization ?? "")?.[1];
  if (token === undefined) throw new ConnectError("sign in as an admin first", Code.Unauthenticated);
  const principal = await verifier.verify(token);
  if (principal.role !== "admin") throw new ConnectError("only an admin may change faults", Code.PermissionDenied);
  return token;
}

export interface AdminRelay {
  /** Handles `/admin/<service>/shopmesh.faults.v1.FaultInjectionService/<Method>`; false for other paths. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
}

/**
 * The fault-injection admin API for the page. A service's admin listener
 * stays on loopback and speaks gRPC only, so the console serves the same
 * contract over Connect at `/admin/<service>/` and passes each call on. It
 * asks for an admin's token itself, since a development mesh's listeners
 * take calls without one, and forwards the token, which the listeners of a
 * mesh outside development check again.
 */
export function createAdminRelay(
  /** `127.0.0.1:port` of a service's admin listener, or undefined while it is not running. */
  adminAddress: (service: MeshService) => string | undefined,
  verifier: TokenVerifier,
): AdminRelay {
  const forward = (service: MeshService) => {
    const call = async <T>(context: HandlerContext, send: (client: ReturnType<typeof faults>) => Promise<T>) => {
      const token = await requireAdminToken(context.requestHeader.get("authorization"), verifier);
      const address = adminAddress(service);
      if (address === undefined) throw new ConnectError(`${service} is not running`, Code.Unavailable);
      const transport = createTransport({ target: address, token });
      try {
        return await send(faults(transport));
      } finally {
        transport.close();
      }
    };
    const impl: ServiceImpl<typeof FaultInjectionService> = {
      setFault: (request, context) => call(context, (client) => client.setFault(request, { timeoutMs: 2000 })),
      clearFaults: (request, context) => call(context, (client) => client.clearFaults(request, { timeoutMs: 2000 })),
      listFaults: (request, context) => call(context, (client) => client.listFaults(request, { timeoutMs: 2000 })),
    };
    return impl;
  };
  const handlers = new Map(
    meshServices.map((service) => [
      service,
      connectNodeAdapter({
        routes: (router) => router.service(FaultInjectionService, forward(service)),
        requestPathPrefix: `/admin/${service}`,
      }),
    ]),
  );
  return {
    handle(req, res) {
      const service = /^\/admin\/([\w-]+)\//.exec(req.url ?? "")?.[1];
      const handler = handlers.get(service as MeshService);
      if (handler === undefined) return false;
      handler(req, res);
      return true;
    },
  };
}

const faults = (transport: ReturnType<typeof createTransport>) => createClient(FaultInjectionService, transport);
