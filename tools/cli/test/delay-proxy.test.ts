// The delay proxy of the multi-host sweep: bytes from the upstream arrive
// whole, in order and the delay later; the delay changes while connections
// are open; a control request it cannot use gets a 400 naming the form.
import { once } from "node:events";
import { setTimeout } from "node:timers/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDelayProxy, type DelayProxy } from "../src/cluster/delay-proxy.js";

let upstream: Server;
let proxy: DelayProxy;
const sockets: Socket[] = [];

beforeAll(async () => {
  // Answers every chunk with the same bytes, at once; an outage resets its side of a connection too.
  upstream = createServer((socket) => socket.on("data", (chunk) => socket.write(chunk)).on("error", () => undefined));
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

/** A connection through the proxy that stays open, or undefined when the proxy resets it. */
async function connected(): Promise<Socket | undefined> {
  const socket = connect(proxy.port, "127.0.0.1");
  sockets.push(socket);
  socket.on("error", () => undefined);
  const closed = new Promise<"closed">((resolve) => socket.on("close", () => resolve("closed")));
  await once(socket, "connect").catch(() => undefined);
  // A refused connection is accepted, then reset at once: it is open only if a round trip works.
  const outcome = await Promise.race([closed, roundTrip(socket, "ping").then(() => "open" as const)]);
  return outcome === "open" ? socket : undefined;
}

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
    for (const query of [
      "/outage?share=0.95&periodMs=1000",
      "/outage?share=0.5&periodMs=50",
      "/outage?periodMs=1000",
    ]) {
      const response = await fetch(`http://127.0.0.1:${proxy.controlPort}${query}`);
      expect(response.status).toBe(400);
      expect(await response.text()).toMatch(/^GET \/outage\?share=S&periodMs=T/);
    }
    expect(proxy.delayMs).toBe(0);
    expect(proxy.cutConnections).toBe(0);
  });

  it("takes the link down for a share of every period: open connections reset, new ones refused, then up again", async () => {
    // Only this test's connections are open through the proxy.
    for (const socket of sockets.splice(0)) socket.destroy();
    const open = await connected();
    expect(open).toBeDefined();
    expect((await roundTrip(open!, "before the outage")).echoed).toBe("before the outage");
    const reset = new Promise((resolve) => open!.on("close", resolve));
    // Down for 600 ms of every 60 s: long enough to be seen, and only once in this test.
    const set = await fetch(`http://127.0.0.1:${proxy.controlPort}/outage?share=0.01&periodMs=60000`);
    expect(await set.json()).toEqual({ share: 0.01, periodMs: 60000 });
    await reset;
    expect(await connected()).toBeUndefined();
    expect(proxy.cutConnections).toBe(2);
    // Up again once the outage has passed: bounded, a connection attempt at most every 50 ms for 5 s.
    let after: Socket | undefined;
    for (let attempt = 0; attempt < 100 && after === undefined; attempt++) {
      after = await connected();
      if (after === undefined) await setTimeout(50);
    }
    expect((await roundTrip(after!, "after the outage")).echoed).toBe("after the outage");
    proxy.setOutage(0, 1000);
  });
});
