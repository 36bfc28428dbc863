// The cluster's network: one Linux network namespace per host, each joined
// to a bridge of the cluster's own by a veth pair, on a private /24 that the
// cluster assigns itself. The bridge has no address and nothing routes
// between it and the machine's other interfaces, so the hosts reach each
// other and nothing else.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

/** One host of the cluster: its namespace, address and the host side of its veth. */
export interface NetworkHost {
  readonly name: string;
  readonly namespace: string;
  readonly address: string;
  readonly veth: string;
}

/** What {@link createNetwork} made, enough to remove it again. */
export interface ClusterNetwork {
  readonly id: string;
  readonly bridge: string;
  readonly subnet: string;
  readonly hosts: NetworkHost[];
}

/** Runs `ip` with the arguments; a failure says which command failed and what ip printed. */
export async function ip(args: string[]): Promise<string> {
  try {
    const { stdout } = await run("ip", args, { encoding: "utf8" });
    return stdout;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`ip ${args.join(" ")} failed: ${stderr || String(error)}`);
  }
}

/** A cluster id: short enough for interface names (at most 15 characters), different for every run. */
export function newClusterId(): string {
  return `${(process.pid % 1296).toString(36).padStart(2, "0")}${Math.random().toString(36).slice(2, 6)}`;
}

/** Names every part of a cluster's network, from its id. */
export function networkNames(id: string) {
  return {
    bridge: `smc${id}`,
    namespace: (host: string) => `shopmesh-${id}-${host}`,
    veth: (index: number) => `smc${id}v${index}`,
  };
}

/**
 * Creates the bridge and one namespace per host name, with addresses
 * `10.213.<octet>.<10 + index>`. On a failure part way, everything made so
 * far is removed before the error is thrown.
 */
export async function createNetwork(id: string, hostNames: readonly string[]): Promise<ClusterNetwork> {
  const names = networkNames(id);
  // A third octet of its own per run: two clusters on one machine never share addresses.
  const octet = 1 + Math.floor(Math.random() * 254);
  const network: ClusterNetwork = {
    id,
    bridge: names.bridge,
    subnet: `10.213.${octet}.0/24`,
    hosts: hostNames.map((name, index) => ({
      name,
      namespace: names.namespace(name),
      address: `10.213.${octet}.${10 + index}`,
      veth: names.veth(index),
    })),
  };
  try {
    await ip(["link", "add", network.bridge, "type", "bridge"]);
    await ip(["link", "set", network.bridge, "up"]);
    for (const host of network.hosts) {
      await ip(["netns", "add", host.namespace]);
      await ip(["link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.namespace]);
      await ip(["link", "set", host.veth, "master", network.bridge, "up"]);
      const inside = ["netns", "exec", host.namespace, "ip"];
      await ip([...inside, "link", "set", "lo", "up"]);
      await ip([...inside, "addr", "add", `${host.address}/24`, "dev", "eth0"]);
      await ip([...inside, "link", "set", "eth0", "up"]);
    }
  } catch (error) {
    await removeNetwork(network);
    throw error;
  }
  return network;
}

/**
 * Removes the namespaces and the bridge (a veth goes with its namespace).
 * Tolerates parts that are already gone; never throws. Returns what it could
 * not remove.
 */
export async function removeNetwork(network: Pick<ClusterNetwork, "bridge" | "hosts">): Promise<string[]> {
  const failures: string[] = [];
  const existingNamespaces = new Set(
    (await ip(["netns", "list"]).catch(() => "")).split("\n").map((l) => l.split(" ")[0]),
  );
  for (const host of network.hosts) {
    if (!existingNamespaces.has(host.namespace)) continue;
    await ip(["netns", "del", host.namespace]).catch((error: Error) => failures.push(error.message));
  }
  for (const link of [...network.hosts.map((h) => h.veth), network.bridge]) {
    const exists = await ip(["link", "show", link]).then(
      () => true,
      () => false,
    );
    if (exists) await ip(["link", "del", link]).catch((error: Error) => failures.push(error.message));
  }
  return failures;
}

/** The pids of every process in a namespace (`ip netns pids`); none when it is gone. */
export async function namespacePids(namespace: string): Promise<number[]> {
  const out = await ip(["netns", "pids", namespace]).catch(() => "");
  return out
    .split(/\s+/)
    .filter((pid) => /^\d+$/.test(pid))
    .map(Number);
}

/**
 * Cuts one direction of the path between two hosts: inside `from`'s
 * namespace, packets for `to` are dropped by a blackhole route. Connections
 * between them stop carrying anything, and new ones cannot be made, while
 * both keep talking to every other host.
 */
export async function blackhole(from: NetworkHost, to: NetworkHost): Promise<void> {
  await ip(["netns", "exec", from.namespace, "ip", "route", "add", "blackhole", `${to.address}/32`]);
}

/** Removes what {@link blackhole} added. */
export async function removeBlackhole(from: NetworkHost, to: NetworkHost): Promise<void> {
  await ip(["netns", "exec", from.namespace, "ip", "route", "del", "blackhole", `${to.address}/32`]);
}
