// Finding a port for a program that cannot report the one it bound, and
// waiting until it accepts connections.
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, waitUntilAccepting } from "../src/free-port.js";

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

describe("freePort and waitUntilAccepting", () => {
  it("waits while nothing listens, and resolves once something does", async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    let accepted = false;
    const waiting = waitUntilAccepting("127.0.0.1", port, { timeoutMs: 10_000 }).then(() => (accepted = true));
    // The first attempt is refused: nothing listens yet.
    await new Promise((resolve) => setImmediate(resolve));
    expect(accepted).toBe(false);
    server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server!.listen(port, "127.0.0.1", resolve));
    await waiting;
    expect(accepted).toBe(true);
  });

  it("gives up when the program that should listen has exited", async () => {
    const port = await freePort();
    await expect(waitUntilAccepting("127.0.0.1", port, { exited: Promise.resolve(1) })).rejects.toThrow(
      `the program that should listen on 127.0.0.1:${port} exited first`,
    );
  });

  it("gives up after its timeout", async () => {
    const port = await freePort();
    await expect(waitUntilAccepting("127.0.0.1", port, { timeoutMs: 100 })).rejects.toThrow(
      `nothing accepted connections on 127.0.0.1:${port} in 100 ms`,
    );
  });
});
