import { once } from "node:events";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningConsole, startConsole } from "../src/server/console-server.js";
import { pageDir } from "../src/server/page-build.js";
import type { MeshSummary } from "../src/summary-types.js";

/** A metrics endpoint that counts its scrapes, standing in for user-orders'. */
let metrics: Server;
let scrapes = 0;
/** A port nothing listens on: the other services are down. */
let closedPort: number;
let console_: RunningConsole;

const listen = async (server: Server) => {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
};

beforeAll(async () => {
  metrics = createServer((_, res) => {
    scrapes += 1;
    res.end('shopmesh_circuit_breaker_state{dependency="products",state="open"} 1\n');
  });
  const metricsPort = await listen(metrics);
  const probe = createServer();
  closedPort = await listen(probe);
  probe.close();
  console_ = await startConsole({
    port: 0,
    pageDir,
    intervalMs: 100,
    ca: () => undefined,
    loadUserId: () => "someone",
    endpoints: (service) => ({
      address: `127.0.0.1:${closedPort}`,
      adminPort: closedPort,
      httpPort: closedPort,
      metricsPort: service === "user-orders" ? metricsPort : closedPort,
    }),
  });
});

afterAll(async () => {
  await console_.close();
  metrics.close();
});

const post = (path: string, body: string, headers: Record<string, string> = {}) =>
  fetch(`${console_.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });

/** Reads server-sent events until `enough` says so, then disconnects. */
async function watch(enough: (summary: MeshSummary) => boolean): Promise<MeshSummary> {
  const answer = await fetch(`${console_.url}/api/events`);
  const reader = answer.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the event stream ended");
      buffered += value;
      for (const event of buffered.split("\n\n").slice(0, -1)) {
        const data = /^data: (.*)$/m.exec(event)?.[1];
        if (data === undefined) continue;
        const summary = JSON.parse(data) as MeshSummary;
        if (enough(summary)) return summary;
      }
      buffered = buffered.slice(buffered.lastIndexOf("\n\n") + 2);
    }
  } finally {
    await reader.cancel();
  }
}

describe("the console's server", () => {
  it("scrapes only while a page watches, and shows a service that does not answer as down", async () => {
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(scrapes).toBe(0);
    const summary = await watch((s) => s.services.every((service) => service.problem !== "not scraped yet"));
    expect(summary.services.find((s) => s.service === "products")).toMatchObject({
      up: false,
      problem: "not answering",
    });
    expect(summary.services.find((s) => s.service === "user-orders")?.up).toBe(true);
    expect(summary.edges.find((e) => e.to === "products" && e.from === "user-orders")?.breaker).toBe("open");
    await expect.poll(() => console_.watchers).toBe(0);
    // A scrape already sent when the page left may still arrive.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const after = scrapes;
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(scrapes).toBe(after);
  });

  it("answers a call to a service that is down with Connect's unavailable, and refuses other contracts", async () => {
    const down = await post("/rpc/shopmesh.products.v1.ProductsService/ListProducts", "{}");
    expect(down.status).toBe(503);
    expect(await down.json()).toMatchObject({ code: "unavailable" });
    const other = await post("/rpc/shopmesh.faults.v1.FaultInjectionService/SetFault", "{}");
    expect(other.status).toBe(404);
    expect(await other.json()).toMatchObject({ code: "unimplemented" });
  });

  it("relays faults and starts the load for an admin only", async () => {
    const faults = await post("/admin/products/shopmesh.faults.v1.FaultInjectionService/ListFaults", "{}");
    expect(faults.status).toBe(401);
    expect(await faults.json()).toMatchObject({ code: "unauthenticated" });
    const load = await post("/api/load", '{"ratePerSecond":5}');
    expect(load.status).toBe(401);
    const forged = await post("/api/load", '{"ratePerSecond":5}', { authorization: "Bearer not.a.token" });
    expect([401, 503]).toContain(forged.status);
  });

  it("answers only to its own address, against pages of other origins that resolve to loopback", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL(console_.url);
      request({ host: url.hostname, port: url.port, path: "/", headers: { host: "attacker.example:80" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on("error", reject)
        .end();
    });
    expect(status).toBe(421);
  });

  it("refuses a path that does not decode, and goes on serving", async () => {
    const bad = await fetch(`${console_.url}/%zz`);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("bad percent-encoding");
    const missing = await fetch(`${console_.url}/no-such-file%20here.js`);
    expect(missing.status).toBe(404);
    await missing.arrayBuffer();
    expect((await fetch(`${console_.url}/api/traces/${"0".repeat(32)}`)).status).toBe(200);
  });

  it("drops spans while nobody watches, and has no trace to show then", async () => {
    const span = {
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      name: "shopmesh.userorders.v1.UserOrdersService/GetUserOrders",
      kind: 2,
      startTimeUnixNano: "1700000000000000000",
      endTimeUnixNano: "1700000000005000000",
    };
    const body = JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [span] }] }] });
    expect((await post("/v1/traces", body)).status).toBe(200);
    expect(await (await fetch(`${console_.url}/api/traces/${span.traceId}`)).json()).toEqual({
      traceId: span.traceId,
      bars: [],
      events: [],
    });
  });
});
