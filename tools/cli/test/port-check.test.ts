import { describe, expect, it } from "vitest";
import { type BusyPort, busyPortLines, ephemeralPortRange } from "../src/mesh/port-check.js";

const listener = { kind: "listener" } as const;

describe("busyPortLines", () => {
  it("names every port servers listen on in one line, then what to do", () => {
    const busy: BusyPort[] = [
      { port: 50051, what: "users", holder: listener },
      { port: 50052, what: "products", holder: listener },
      { port: 5050, what: "console", holder: listener },
    ];
    expect(busyPortLines(busy, "SHOPMESH_PORT_BASE=<first port>")).toEqual([
      "ports 50051 (users), 50052 (products), 5050 (console) are busy: servers listen on them (is shopmesh already running?)",
      "Stop what holds them, or choose other ports with SHOPMESH_PORT_BASE=<first port>.",
    ]);
  });

  it("gives one port a server holds a line of its own", () => {
    const lines = busyPortLines([{ port: 51051, what: "users admin", holder: listener }], "--port-base <first port>");
    expect(lines).toEqual([
      "port 51051 (users admin) is busy: a server listens on it (is shopmesh already running?)",
      "Stop what holds it, or choose other ports with --port-base <first port>.",
    ]);
  });

  it("keeps a line for each port something other than a server holds", () => {
    const [low, high] = ephemeralPortRange();
    const below = low - 10;
    const lines = busyPortLines(
      [
        { port: below + 1, what: "products", holder: { kind: "connection", state: "CLOSE_WAIT" } },
        { port: below + 2, what: "orders", holder: { kind: "unknown" } },
        // The servers' line comes first wherever their ports are.
        { port: below, what: "users", holder: listener },
        { port: low, what: "user-orders", holder: { kind: "connection", state: "ESTABLISHED" } },
      ],
      "--port-base <first port>",
    );
    expect(lines).toEqual([
      `port ${below} (users) is busy: a server listens on it (is shopmesh already running?)`,
      `port ${below + 1} (products) is busy: a socket that is not a server holds it (CLOSE_WAIT)`,
      `port ${below + 2} (orders) is busy`,
      `port ${low} (user-orders) is busy: an outgoing connection (ESTABLISHED) holds it, not a server; the system lent it the port from its ephemeral range ${low}-${high}`,
      `Outgoing connections take their local port from ${low}-${high} and keep it while they are open: choose ports below ${low} with --port-base <first port>.`,
    ]);
  });
});
