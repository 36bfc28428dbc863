import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { FaultInjectionService } from "@shopmesh/sdk/faults/v1";
import { UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import type { MeshService } from "../summary-types.js";

/** The signed-in person's access token, sent with every call while set. */
let accessToken: string | undefined;
export function setAccessToken(token: string | undefined): void {
  accessToken = token;
}
export const bearer = (): Record<string, string> =>
  accessToken === undefined ? {} : { authorization: `Bearer ${accessToken}` };

const withToken: Interceptor = (next) => (req) => {
  if (accessToken !== undefined) req.header.set("authorization", `Bearer ${accessToken}`);
  return next(req);
};

// The console's server relays /rpc/<package.Service>/<Method> to the services'
// HTTP ports, and serves the fault-injection contract at /admin/<service>/.
const pageUrl = (path: string) => new URL(path, document.baseURI).href.replace(/\/$/, "");
const rpc = createConnectTransport({ baseUrl: pageUrl("rpc"), interceptors: [withToken] });

export const users = createClient(UsersService, rpc);
export const userOrders = createClient(UserOrdersService, rpc);
export const faultsOf = (service: MeshService) =>
  createClient(
    FaultInjectionService,
    createConnectTransport({ baseUrl: pageUrl(`admin/${service}`), interceptors: [withToken] }),
  );

/** A W3C traceparent with the sampled flag, so that the services record the call's spans for the waterfall. */
export function sampledTraceparent(): { traceparent: string; traceId: string } {
  const hex = (bytes: number) =>
    Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
  const traceId = hex(16);
  return { traceparent: `00-${traceId}-${hex(8)}-01`, traceId };
}
