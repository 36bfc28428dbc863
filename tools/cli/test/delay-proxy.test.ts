// The delay proxy of the multi-host sweep: bytes from the upstream arrive
// whole, in order and the delay later; the delay changes while connections
// are open; a control request it cannot use gets a 400 naming the form.
import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDelayProxy, type DelayProxy } from "../src/cluster/delay-proxy.js";

let upstream: Server;
let proxy: DelayProxy;
const sockets: Socket[] = [];

beforeAll(async () => {
  // Answers every chunk with the same bytes, at once.
  upstream = createServer((socket) => socket.on("data", (chunk) => socket.write(chunk)));
  await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
  proxy = await startDelayProxy({
    listen: { host: "127.0.0.1", port: 0 },
    upstream: { host: "127.0.0.1", port: (upstream.address() as { port: number }).port },
    control: { host: "127.0.0.1", port: 0 },
  });
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await proxy?.close();
  await new Promise((resolve) => upstream?.close(resolve));
});

async function roundTrip(socket: Socket, text: string): Promise<{ ms: number; echoed: string }> {
  const started = performance.now();
  let echoed = "";
  const whole = new Promise<void>((resolve) => {
    const onData = (chunk: Buffer) => {
      echoed += chunk.toString();
      if (echoed.length >= text.length) {
        socket.off("data", onData);
        resolve();
      }
    };
    socket.on("data", onData);
  });
  for (const part of text.match(/.{1,7}/g)!) socket.write(part);
  await whole;
  return { ms: performance.now() - started, echoed };
}

describe("the delay proxy", () => {
  it("passes bytes through whole and in order, the delay later, and takes a new delay on an open connection", async () => {
    const socket = connect(proxy.port, "127.0.0.1");
    sockets.push(socket);
    await once(socket, "connect");
    const text = "0123456789abcdefghijklmnopqrstuvwxyz".repeat(20);
    const fast = await roundTrip(socket, text);
    expect(fast.echoed).toBe(text);

    const set = await fetch(`http://127.0.0.1:${proxy.controlPort}/delay?ms=150`);
    expect(await set.json()).toEqual({ delayMs: 150 });
    const slow = await roundTrip(socket, text);
    expect(slow.echoed).toBe(text);
    expect(slow.ms).toBeGreaterThanOrEqual(145);
    expect(slow.ms).toBeGreaterThan(fast.ms + 100);
    proxy.delayMs = 0;
  });

  it("answers a control request it cannot use with 400 and the form it takes", async () => {
    for (const query of ["/delay?ms=-1", "/delay?ms=abc", "/other?ms=5"]) {
      const response = await fetch(`http://127.0.0.1:${proxy.controlPort}${query}`);
      expect(response.status).toBe(400);
      expect(await response.text()).toMatch(/^GET \/delay\?ms=N/);
    }
    expect(proxy.delayMs).toBe(0);
  });
});
