// What the client host does for the scenarios, called by name from the
// harness (client-driver.ts carries the calls in and the answers out). Every
// call goes over the cluster's network, by name, with the mesh's CA.
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@shopmesh/sdk/health/v1";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { Consistency, Dependency, Fallback, UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { connect } from "nats";
import { seedOnce } from "../mesh/demo-seed.js";

/** Where the client host finds what it needs. */
export interface ClientContext {
  caFile: string;
  dataDir: string;
  natsUrls: string;
  ports: { users: number; products: number; orders: number; "user-orders": number };
}

/** The stream name of a service's events, as the relay names it (prefix "shopmesh"). */
const streamOf = (service: string) => `SHOPMESH_${service.toUpperCase()}`;

export function clientOperations(context: ClientContext) {
  const ca = readFileSync(context.caFile);
  const transports: GrpcTransport[] = [];
  const transport = (target: string, service: string, options: { token?: string; roundRobin?: boolean } = {}) => {
    const created = createTransport({
      target,
      tls: { ca, service },
      token: options.token,
      ...(options.roundRobin
        ? {
            loadBalancing: "round_robin" as const,
            // Five attempts, the first retry after up to 100 ms: a loaded client may take a few hundred
            // milliseconds to learn that a replica's connection is gone, and every attempt until then can
            // be picked for it.
            retry: { names: ["shopmesh.userorders.v1.UserOrdersService"], maxAttempts: 5, initialBackoffMs: 100 },
          }
        : {}),
      channelOptions: { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 1000 },
    });
    transports.push(created);
    return created;
  };
  const userOrdersTarget = (host: string | undefined) =>
    host === undefined
      ? `dns:///user-orders:${context.ports["user-orders"]}`
      : `${host}:${context.ports["user-orders"]}`;
  const viewClient = (host: string | undefined, token: string) =>
    createClient(
      UserOrdersService,
      transport(userOrdersTarget(host), "user-orders", { token, roundRobin: host === undefined }),
    );

  /** Every order of a user in one view, page by page. */
  async function wholeView(host: string | undefined, token: string, userId: string, consistency: Consistency) {
    const client = viewClient(host, token);
    const orderIds: string[] = [];
    const degradations: { dependency: string; code: string; fallback: string }[] = [];
    let linesWithoutDetails = 0;
    let lines = 0;
    let pageToken = "";
    const started = performance.now();
    do {
      const page = await client.getUserOrders({ userId, pageSize: 100, pageToken, consistency }, { timeoutMs: 5000 });
      for (const order of page.orders) {
        orderIds.push(order.orderId);
        for (const line of order.lines) {
          lines++;
          if (!line.product) linesWithoutDetails++;
        }
      }
      for (const d of page.degradations)
        degradations.push({ dependency: Dependency[d.dependency], code: d.code, fallback: Fallback[d.fallback] });
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    return { orderIds, degradations, lines, linesWithoutDetails, ms: performance.now() - started };
  }

  return {
    /** The demo data (users, catalog, a few orders), and tokens for alice and the admin. */
    async seed() {
      const target = (service: "users" | "products" | "orders") => `${service}:${context.ports[service]}`;
      const { record } = await seedOnce(
        context.dataDir,
        { users: target("users"), products: target("products"), orders: target("orders") },
        (service) => ({ ca, service }),
      );
      const users = createClient(UsersService, transport(target("users"), "users"));
      const alice = await users.signIn({
        email: record.accounts.alice.email,
        password: record.accounts.alice.password,
      });
      return {
        aliceId: record.accounts.alice.userId,
        aliceToken: alice.session!.accessToken,
        productIds: record.productIds,
      };
    },

    /** A new customer and a token. */
    async signUp(args: { email: string }) {
      const users = createClient(UsersService, transport(`users:${context.ports.users}`, "users"));
      const made = await users.signUp({ email: args.email, password: "cluster-password", displayName: args.email });
      return { userId: made.user!.id, token: made.session!.accessToken };
    },

    /** Waits until a replica's health says its projection has caught up. */
    async projectionServing(args: { host: string; timeoutMs: number }) {
      const health = createClient(Health, transport(userOrdersTarget(args.host), "user-orders"));
      const started = Date.now();
      let last = "no answer";
      while (Date.now() - started < args.timeoutMs) {
        try {
          const answer = await health.check({ service: "projection" }, { timeoutMs: 1000 });
          if (answer.status === ServingStatus.SERVING) return { ms: Date.now() - started };
          last = ServingStatus[answer.status];
        } catch (error) {
          last = ConnectError.from(error).message;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      throw new Error(`${args.host}: projection not SERVING after ${args.timeoutMs} ms (${last})`);
    },

    /**
     * Reads a user's view over the round_robin channel (both replicas, the
     * SDK's retries on) or one replica, `concurrency` at a time, until
     * `count` reads or `durationMs` have passed.
     */
    async reads(args: {
      host?: string;
      userId: string;
      token: string;
      consistency: "STRONG" | "EVENTUAL";
      count: number;
      durationMs: number;
      concurrency: number;
    }) {
      const client = viewClient(args.host, args.token);
      const consistency = args.consistency === "STRONG" ? Consistency.STRONG : Consistency.EVENTUAL;
      const failed: Record<string, number> = {};
      /** The first message of each code, to say what failed. */
      const messages: Record<string, string> = {};
      const latencies: number[] = [];
      const started = performance.now();
      let issued = 0;
      const worker = async () => {
        while (issued < args.count && performance.now() - started < args.durationMs) {
          issued++;
          const t = performance.now();
          try {
            await client.getUserOrders({ userId: args.userId, pageSize: 10, consistency }, { timeoutMs: 2000 });
            latencies.push(performance.now() - t);
          } catch (error) {
            const connectError = ConnectError.from(error);
            const code = Code[connectError.code];
            failed[code] = (failed[code] ?? 0) + 1;
            messages[code] ??= connectError.rawMessage;
          }
        }
      };
      await Promise.all(Array.from({ length: args.concurrency }, worker));
      latencies.sort((a, b) => a - b);
      const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
      return {
        ok: latencies.length,
        failed,
        messages,
        p50: at(0.5),
        p99: at(0.99),
        max: latencies.at(-1) ?? 0,
        durationMs: performance.now() - started,
      };
    },

    /** How many GetUserOrders calls a replica has answered, from its metrics. */
    async servedViews(args: { host: string }) {
      const response = await fetch(`http://${args.host}:${context.ports["user-orders"] + 2000}/metrics`, {
        signal: AbortSignal.timeout(3000),
      });
      const text = await response.text();
      let total = 0;
      for (const line of text.split("\n")) {
        if (line.startsWith("rpc_server_duration_seconds_count{") && line.includes('rpc_method="GetUserOrders"'))
          total += Number(line.slice(line.lastIndexOf(" ") + 1));
      }
      return { total };
    },

    /** Places `count` orders one after another; each gets one attempt. */
    async placeOrders(args: {
      token: string;
      productIds: string[];
      count: number;
      requestPrefix: string;
      /** Time from one order's start to the next's, to spread them over a fault. */
      intervalMs?: number;
    }) {
      const orders = createClient(
        OrdersService,
        transport(`orders:${context.ports.orders}`, "orders", { token: args.token }),
      );
      const acknowledged: string[] = [];
      const failed: Record<string, number> = {};
      for (let i = 0; i < args.count; i++) {
        const next = Date.now() + (args.intervalMs ?? 0);
        try {
          const { order } = await orders.createOrder(
            {
              requestId: `${args.requestPrefix}-${i}`,
              items: [{ productId: args.productIds[i % args.productIds.length]!, quantity: 1 }],
            },
            { timeoutMs: 2000 },
          );
          acknowledged.push(order!.id);
        } catch (error) {
          const code = Code[ConnectError.from(error).code];
          failed[code] = (failed[code] ?? 0) + 1;
        }
        const wait = next - Date.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      return { acknowledged, failed };
    },

    /** Sets the delay of a delay proxy (delay-proxy.ts) through its control listener. */
    async setProxyDelay(args: { control: string; ms: number }) {
      const response = await fetch(`http://${args.control}/delay?ms=${args.ms}`, { signal: AbortSignal.timeout(3000) });
      if (!response.ok) throw new Error(`delay proxy at ${args.control}: ${response.status} ${await response.text()}`);
      return { delayMs: args.ms };
    },

    async setProxyOutage(args: { control: string; share: number; periodMs: number }) {
      const url = `http://${args.control}/outage?share=${args.share}&periodMs=${args.periodMs}`;
      const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
      if (!response.ok) throw new Error(`delay proxy at ${args.control}: ${response.status} ${await response.text()}`);
      return { share: args.share, periodMs: args.periodMs };
    },

    /**
     * `count` STRONG views from one replica, one after another (`paceMs`
     * apart, so that they spread over time): their latencies, how many were
     * degraded, and how many failed, by code.
     */
    async viewLatencies(args: { host: string; token: string; userId: string; count: number; paceMs?: number }) {
      const client = viewClient(args.host, args.token);
      const latencies: number[] = [];
      let degraded = 0;
      const failed: Record<string, number> = {};
      for (let i = 0; i < args.count; i++) {
        if (i > 0 && args.paceMs) await sleep(args.paceMs);
        const started = performance.now();
        try {
          const view = await client.getUserOrders(
            { userId: args.userId, pageSize: 10, consistency: Consistency.STRONG },
            { timeoutMs: 5000 },
          );
          if (view.degradations.length > 0) degraded++;
        } catch (error) {
          const code = Code[ConnectError.from(error).code];
          failed[code] = (failed[code] ?? 0) + 1;
        }
        latencies.push(performance.now() - started);
      }
      latencies.sort((a, b) => a - b);
      const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
      return {
        views: args.count,
        min: latencies[0]!,
        p50: at(0.5),
        p90: at(0.9),
        max: latencies.at(-1)!,
        degraded,
        failed,
      };
    },

    /** Every order of a user as orders itself lists them. */
    async listOrders(args: { token: string; userId: string }) {
      const orders = createClient(
        OrdersService,
        transport(`orders:${context.ports.orders}`, "orders", { token: args.token }),
      );
      const ids: string[] = [];
      let pageToken = "";
      do {
        const page = await orders.listOrders({ userId: args.userId, pageSize: 100, pageToken }, { timeoutMs: 3000 });
        ids.push(...page.orders.map((o) => o.id));
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      return { ids };
    },

    /** One whole view of a user from one replica (or either). */
    view(args: { host?: string; token: string; userId: string; consistency: "STRONG" | "EVENTUAL" }) {
      return wholeView(
        args.host,
        args.token,
        args.userId,
        args.consistency === "STRONG" ? Consistency.STRONG : Consistency.EVENTUAL,
      );
    },

    /**
     * Waits until a replica's EVENTUAL view holds every one of `orderIds`;
     * reports how long it took and any order it lists twice.
     */
    async awaitOrders(args: { host: string; token: string; userId: string; orderIds: string[]; timeoutMs: number }) {
      const started = Date.now();
      for (;;) {
        const view = await wholeView(args.host, args.token, args.userId, Consistency.EVENTUAL).catch(() => undefined);
        const held = new Set(view?.orderIds ?? []);
        const missing = args.orderIds.filter((id) => !held.has(id));
        if (view && missing.length === 0) {
          const duplicates = view.orderIds.length - held.size;
          return { ms: Date.now() - started, held: view.orderIds.length, duplicates };
        }
        if (Date.now() - started > args.timeoutMs)
          return { ms: Date.now() - started, held: held.size, duplicates: 0, missing: missing.length };
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    },

    /**
     * A service's JetStream stream: its leader and replicas, and whether the
     * outbox sequences it holds are 1..n, each once.
     */
    async streamState(args: { service: string }) {
      const nc = await connect({ servers: context.natsUrls.split(","), timeout: 2000 });
      try {
        const jsm = await nc.jetstreamManager();
        const info = await jsm.streams.info(streamOf(args.service));
        const sequences: number[] = [];
        for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
          const message = await jsm.streams.getMessage(streamOf(args.service), { seq });
          sequences.push(Number(message.header.get("Shopmesh-Outbox-Sequence")));
        }
        const unique = new Set(sequences).size;
        const contiguous = sequences.every((value, index) => value === index + 1);
        return {
          messages: info.state.messages,
          replicasConfigured: info.config.num_replicas,
          leader: info.cluster?.leader ?? "",
          replicas: (info.cluster?.replicas ?? []).map((r) => ({
            name: r.name,
            current: r.current,
            offline: r.offline ?? false,
          })),
          unique,
          contiguous,
        };
      } finally {
        await nc.close();
      }
    },

    close() {
      for (const t of transports) t.close();
    },
  };
}

export type ClientOperations = ReturnType<typeof clientOperations>;
