import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/** A port something is about to listen on, and what for (e.g. "products admin"). */
export interface PortNeed {
  port: number;
  what: string;
}

/**
 * What holds a busy port, as far as the kernel's socket tables tell (Linux
 * only): a server listening on it, or a socket in another state, usually an
 * outgoing connection that was given the port from the ephemeral range.
 */
export type PortHolder = { kind: "listener" } | { kind: "connection"; state: string } | { kind: "unknown" };

export interface BusyPort extends PortNeed {
  holder: PortHolder;
}

/** Resolves true when nothing holds host:port. */
export function portIsFree(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(false));
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/** Every port of `needs` that something already holds, with what holds it. */
export async function findBusyPorts(needs: readonly PortNeed[], host = "127.0.0.1"): Promise<BusyPort[]> {
  const busy: BusyPort[] = [];
  for (const need of needs) {
    if (!(await portIsFree(need.port, host))) busy.push({ ...need, holder: portHolder(need.port) });
  }
  return busy;
}

// The state column of /proc/net/tcp, in hex (include/net/tcp_states.h).
const tcpStates: Record<string, string> = {
  "01": "ESTABLISHED",
  "02": "SYN_SENT",
  "03": "SYN_RECV",
  "04": "FIN_WAIT1",
  "05": "FIN_WAIT2",
  "06": "TIME_WAIT",
  "07": "CLOSE",
  "08": "CLOSE_WAIT",
  "09": "LAST_ACK",
  "0A": "LISTEN",
  "0B": "CLOSING",
};

/** What holds `port` according to /proc/net/tcp and /proc/net/tcp6; "unknown" where they cannot be read. */
export function portHolder(port: number, tables: readonly string[] = ["/proc/net/tcp", "/proc/net/tcp6"]): PortHolder {
  const states: string[] = [];
  for (const table of tables) {
    let text: string;
    try {
      text = readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      // "  sl  local_address rem_address   st ...": local_address is HEXIP:HEXPORT.
      const [, local, , state] = line.trim().split(/\s+/);
      if (!local || !state) continue;
      if (Number.parseInt(local.slice(local.lastIndexOf(":") + 1), 16) === port)
        states.push(tcpStates[state.toUpperCase()] ?? state);
    }
  }
  if (states.includes("LISTEN")) return { kind: "listener" };
  // A socket in TIME_WAIT does not stop a server from binding (Node sets SO_REUSEADDR): name another if there is one.
  const state = states.find((s) => s !== "TIME_WAIT") ?? states[0];
  return state ? { kind: "connection", state } : { kind: "unknown" };
}

/** The range the system takes local ports for outgoing connections from. */
export function ephemeralPortRange(): [number, number] {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low!, high!];
  } catch {
    // Not Linux: Linux's default range is still the best guess.
  }
  return [32768, 60999];
}

/**
 * What to print when ports are busy: what holds each port, then one line on
 * what to do. Ports that servers listen on share one line, since a second
 * start of the same mesh finds every one of its ports so. `moveWith` is how
 * this command moves its ports, e.g. "SHOPMESH_PORT_BASE=<first port>" or
 * "--port-base <first port>".
 */
export function busyPortLines(busy: readonly BusyPort[], moveWith: string): string[] {
  const [low, high] = ephemeralPortRange();
  const listened = busy.filter(({ holder }) => holder.kind === "listener");
  const lines: string[] = [];
  if (listened.length === 1) {
    lines.push(
      `port ${listened[0]!.port} (${listened[0]!.what}) is busy: a server listens on it (is shopmesh already running?)`,
    );
  } else if (listened.length > 1) {
    const named = listened.map(({ port, what }) => `${port} (${what})`).join(", ");
    lines.push(`ports ${named} are busy: servers listen on them (is shopmesh already running?)`);
  }
  for (const { port, what, holder } of busy) {
    const head = `port ${port} (${what}) is busy`;
    if (holder.kind === "listener") continue;
    if (holder.kind === "unknown") lines.push(head);
    else if (port >= low && port <= high) {
      lines.push(
        `${head}: an outgoing connection (${holder.state}) holds it, not a server; the system lent it the port from its ephemeral range ${low}-${high}`,
      );
    } else lines.push(`${head}: a socket that is not a server holds it (${holder.state})`);
  }
  const lent = busy.some(({ port, holder }) => holder.kind === "connection" && port >= low && port <= high);
  lines.push(
    lent
      ? `Outgoing connections take their local port from ${low}-${high} and keep it while they are open: choose ports below ${low} with ${moveWith}.`
      : `Stop what holds ${busy.length === 1 ? "it" : "them"}, or choose other ports with ${moveWith}.`,
  );
  return lines;
}
