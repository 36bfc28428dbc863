// The cluster's certificates: one mesh CA, and per host a certificate for
// the identity it runs (several replicas share one identity) whose subject
// alternative names carry the host's own name, the service name callers
// use, and its address.
import { ensureDevelopmentCertificates, issueHostCertificate, type IdentityFiles } from "@shopmesh/chassis";
import type { NetworkHost } from "./network.js";

export interface ClusterCertificates {
  caFile: string;
  /** By host name. */
  hosts: Record<string, IdentityFiles>;
}

/**
 * Makes the CA under `dir` and issues a certificate for every host named in
 * `services` (host name to the identity it runs) and `clients` (hosts that
 * call as themselves).
 */
export function issueClusterCertificates(
  dir: string,
  hosts: readonly NetworkHost[],
  roles: { services: Record<string, string>; clients: readonly string[] },
): ClusterCertificates {
  const { caFile } = ensureDevelopmentCertificates(dir, []);
  const issued: Record<string, IdentityFiles> = {};
  for (const host of hosts) {
    const identity = roles.services[host.name] ?? (roles.clients.includes(host.name) ? host.name : undefined);
    if (identity === undefined) continue;
    issued[host.name] = issueHostCertificate(dir, {
      identity,
      file: host.name,
      dnsNames: [host.name],
      ipAddresses: [host.address],
    });
  }
  return { caFile, hosts: issued };
}
