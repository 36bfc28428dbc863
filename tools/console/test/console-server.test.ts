import { generateKeyPairSync } from "node:crypto";
import { once } from "node:events";
import { createServer, request, type Server } from "node:http";
import { createServer as createHttp2Server, type Http2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createTokenSigner } from "@shopmesh/chassis";
import { UsersService } from "@shopmesh/sdk/users/v1";
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
/** Stands in for users, publishing only the key that signs `adminToken`. */
let users: Http2Server;
let adminToken: string;

const listen = async (server: Server | Http2Server) => {
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
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const signer = await createTokenSigner(privateKey.export({ format: "pem", type: "pkcs8" }).toString(), 300, "test");
  adminToken = (await signer.sign({ userId: "an-admin", role: "admin" })).token;
  const raw = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url");
  users = createHttp2Server(
    connectNodeAdapter({
      routes: (router) =>
        router.service(UsersService, { getSigningKeys: () => ({ keys: [{ keyId: "test", publicKey: raw }] }) }),
    }),
  );
  const usersPort = await listen(users);
  console_ = await startConsole({
    port: 0,
    pageDir,
    intervalMs: 100,
    ca: () => undefined,
    loadUserId: () => "someone",
    endpoints: (service) => ({
      address: `127.0.0.1:${service === "users" ? usersPort : closedPort}`,
      adminPort: closedPort,
      httpPort: closedPort,
      metricsPort: service === "user-orders" ? metricsPort : closedPort,
    }),
  });
});

afterAll(async () => {
  await console_.close();
  metrics.close();
  users.close();
});

const post = (path: string, body: string, headers: Record<string, string> = {}) =>
  fetch(`${console_.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });

/** Runs `act` while a page watches (the load runs only then), then leaves. */
async function whileWatching(act: () => Promise<void>): Promise<void> {
  const events = await fetch(`${console_.url}/api/events`);
  try {
    await act();
  } finally {
    await events.body!.cancel();
    await expect.poll(() => console_.watchers).toBe(0);
  }
}

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

  it("relays no service named like an object's built-in properties", async () => {
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]) {
      const answer = await post(`/rpc/${name}/ListProducts`, "{}");
      expect(answer.status, name).toBe(404);
      expect(await answer.json()).toEqual({ code: "unimplemented", message: `the console relays no service ${name}` });
    }
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

  it("refuses a load rate it does not offer, a tiny one above all (its timer's delay would overflow)", async () => {
    const admin = { authorization: `Bearer ${adminToken}` };
    await whileWatching(async () => {
      for (const rate of [1e-300, 0.5, -1, 21, "5"]) {
        const refused = await post("/api/load", JSON.stringify({ ratePerSecond: rate }), admin);
        expect(refused.status, `ratePerSecond ${rate}`).toBe(400);
        expect(await refused.json()).toEqual({
          error: "ratePerSecond: must be 0 (off) or from 1 to 20 views a second",
        });
      }
      // 1e999 is Infinity once parsed.
      expect((await post("/api/load", '{"ratePerSecond":1e999}', admin)).status).toBe(400);
      for (const rate of [1, 20, 0]) {
        const taken = await post("/api/load", JSON.stringify({ ratePerSecond: rate }), admin);
        expect(taken.status, `ratePerSecond ${rate}`).toBe(200);
        expect(await taken.json()).toEqual({ ratePerSecond: rate });
      }
    });
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
