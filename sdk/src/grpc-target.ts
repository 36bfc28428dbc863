import { isIP } from "node:net";

/** The name schemes grpc-js resolves a target with (`dns:///host:port`, `ipv4:a:p,b:p`, `unix:///path`). */
export const grpcTargetSchemes = ["dns", "ipv4", "ipv6", "unix"] as const;

const hostAndPort = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$/;

/**
 * Whether `target` is `host:port` with a port from 1 to 65535, the one form
 * both of the SDK's clients take; in brackets only an IPv6 address.
 */
export function isHostAndPort(target: string): boolean {
  const match = hostAndPort.exec(target);
  if (match === null) return false;
  const [, host, port] = match as unknown as [string, string, string];
  if (host.startsWith("[") && isIP(host.slice(1, -1)) !== 6) return false;
  return Number(port) >= 1 && Number(port) <= 65_535;
}

/** A target naming one of the schemes grpc-js resolves; any other target must be host:port. */
const schemeTarget = new RegExp(`^(${grpcTargetSchemes.join("|")}):.`);

/**
 * Whether `target` names a gRPC server as grpc-js takes it: `host:port` (see
 * {@link isHostAndPort}), or a target with one of grpc-js's schemes.
 */
export function isGrpcTarget(target: string): boolean {
  return schemeTarget.test(target) || isHostAndPort(target);
}
