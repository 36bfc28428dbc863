import { connect, createServer } from "node:net";
import { setTimeout as delay } from "node:timers/promises";

/**
 * A port that was free a moment ago on `host`: bound to port 0, read, and
 * closed, for a program that takes its port as a number and cannot report
 * the one it bound itself.
 */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error(`no TCP port bound on ${host}`);
  return address.port;
}

/** Options for {@link waitUntilAccepting}. */
export interface WaitOptions {
  /** Give up after this long. */
  timeoutMs?: number;
  /** Rejects (or resolves) when the program that should listen is gone: there is nothing left to wait for. */
  exited?: Promise<unknown>;
}

/**
 * Resolves once a TCP connection to host:port succeeds, for a program that
 * prints nothing when it is ready. Tries again after each refused attempt,
 * a few milliseconds apart, until the timeout.
 */
export async function waitUntilAccepting(host: string, port: number, options: WaitOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const deadline = performance.now() + timeoutMs;
  let gone = false;
  void options.exited?.then(
    () => (gone = true),
    () => (gone = true),
  );
  for (let attempt = 0; ; attempt++) {
    if (await accepts(host, port)) return;
    if (gone) throw new Error(`the program that should listen on ${host}:${port} exited first`);
    if (performance.now() >= deadline)
      throw new Error(`nothing accepted connections on ${host}:${port} in ${timeoutMs} ms`);
    await delay(Math.min(200, 10 * 2 ** Math.min(attempt, 5)));
  }
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => {
      socket.destroy();
      resolve(false);
    });
  });
}
