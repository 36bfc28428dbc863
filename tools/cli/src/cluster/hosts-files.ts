// Name resolution inside the cluster. `ip netns exec <ns>` bind-mounts every
// file under /etc/netns/<ns>/ over the one of the same name in /etc for the
// process it runs, so each host gets its own hosts file (every host by name,
// and a service name for each of its replicas) and a resolv.conf that sends
// DNS queries to loopback, where nothing answers: lookups that bypass the
// hosts file (nats.js asks DNS first) fail at once instead of leaving the
// cluster.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { NetworkHost } from "./network.js";

const netnsDir = "/etc/netns";

/** A host's entry: its address and the names that lead to it. */
export interface HostsEntry {
  address: string;
  names: string[];
}

/** The text of a hosts file: loopback, then one line per entry. */
export function hostsFileText(entries: readonly HostsEntry[]): string {
  return ["127.0.0.1 localhost", ...entries.map((e) => `${e.address} ${e.names.join(" ")}`), ""].join("\n");
}

/** Writes /etc/netns/<ns>/hosts and resolv.conf for every host. */
export function writeHostsFiles(hosts: readonly NetworkHost[], entries: readonly HostsEntry[]): void {
  const text = hostsFileText(entries);
  for (const host of hosts) {
    const dir = join(netnsDir, host.namespace);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "hosts"), text);
    writeFileSync(join(dir, "resolv.conf"), "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n");
  }
}

/** Removes every host's /etc/netns/<ns>. Never throws. */
export function removeHostsFiles(hosts: readonly Pick<NetworkHost, "namespace">[]): void {
  for (const host of hosts) rmSync(join(netnsDir, host.namespace), { recursive: true, force: true });
}
