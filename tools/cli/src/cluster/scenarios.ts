// The failures a multi-host mesh must survive, each run against a live
// cluster and measured from the client host: a user-orders replica's host
// dies, a NATS node dies, a replica is cut off from products, orders' host
// restarts. Each returns its figures; checks are left to the caller, so that
// a report is written whatever they show.
import type { ClientSession } from "./client-session.js";
import type { Cluster } from "./cluster.js";

/** What the scenarios share: the demo customer and catalog. */
export interface ScenarioSetup {
  aliceId: string;
  aliceToken: string;
  productIds: string[];
  /** Time both replicas' projections took to catch up after the start. */
  catchUpMs: number;
}

const since = (start: number) => Math.round(performance.now() - start);

/** Seeds the demo data and waits until both replicas serve their projections with it. */
export async function prepare(client: ClientSession): Promise<ScenarioSetup> {
  const started = performance.now();
  const seed = await client.call("seed", undefined);
  const { ids } = await client.call("listOrders", { token: seed.aliceToken, userId: seed.aliceId });
  for (const host of ["user-orders-a", "user-orders-b"]) {
    await client.call("projectionServing", { host, timeoutMs: 60_000 });
    const caught = await client.call("awaitOrders", {
      host,
      token: seed.aliceToken,
      userId: seed.aliceId,
      orderIds: ids,
      timeoutMs: 30_000,
    });
    if (caught.missing) throw new Error(`${host}: the projection lacks ${caught.missing} of alice's orders`);
  }
  return { ...seed, catchUpMs: since(started) };
}

/** 1: one user-orders replica's host goes away while clients read through the round_robin channel. */
export async function replicaLoss(cluster: Cluster, client: ClientSession, setup: ScenarioSetup) {
  const servedBefore = await served(client);
  const reading = client.call("reads", {
    userId: setup.aliceId,
    token: setup.aliceToken,
    consistency: "EVENTUAL",
    count: 5000,
    durationMs: 7000,
    concurrency: 4,
  });
  // The kill comes once both replicas have answered a share of the reads: proof that both carry traffic.
  let servedAtKill = servedBefore;
  const waitStarted = performance.now();
  while (performance.now() - waitStarted < 5000) {
    servedAtKill = await served(client);
    if (servedAtKill.a - servedBefore.a >= 20 && servedAtKill.b - servedBefore.b >= 20) break;
  }
  const killedAt = performance.now();
  await cluster.killHost("user-orders-b");
  const reads = await reading;
  const readsAfterKill = (await client.call("servedViews", { host: "user-orders-a" })).total - servedAtKill.a;
  const readingAfterKillMs = Math.round(reads.durationMs - (killedAt - waitStarted));
  const restarted = performance.now();
  await cluster.restartHost("user-orders-b");
  await client.call("projectionServing", { host: "user-orders-b", timeoutMs: 60_000 });
  return {
    reads,
    failedReads: Object.values(reads.failed).reduce((a, b) => a + b, 0),
    beforeKill: { a: servedAtKill.a - servedBefore.a, b: servedAtKill.b - servedBefore.b },
    answeredByAAfterKill: readsAfterKill,
    readingAfterKillMs,
    replicaBackMs: since(restarted),
  };
}

async function served(client: ClientSession): Promise<{ a: number; b: number }> {
  const [a, b] = await Promise.all([
    client.call("servedViews", { host: "user-orders-a" }),
    client.call("servedViews", { host: "user-orders-b" }),
  ]);
  return { a: a.total, b: b.total };
}

/** 2: the NATS node leading the orders stream dies while orders are placed; then it comes back. */
export async function natsNodeLoss(cluster: Cluster, client: ClientSession, setup: ScenarioSetup) {
  const carol = await client.call("signUp", { email: `carol-${cluster.id}@shopmesh.local` });
  const before = await client.call("streamState", { service: "orders" });
  const victim = before.leader as "nats-1" | "nats-2" | "nats-3";
  await cluster.killHost(victim);
  const killed = performance.now();
  const during = await client.call("placeOrders", {
    token: carol.token,
    productIds: setup.productIds,
    count: 20,
    requestPrefix: "nats-loss",
    intervalMs: 50,
  });
  // From here, two clocks: until JetStream holds the orders' events (the relay), and until both projections do.
  const [relayedMs, converged] = await Promise.all([
    relayed(client, before.messages + during.acknowledged.length, 60_000),
    bothReplicas(client, carol, during.acknowledged, 60_000),
  ]);
  const duringOutage = await client.call("streamState", { service: "orders" });
  const outageMs = since(killed);

  const restarted = performance.now();
  await cluster.restartHost(victim);
  let rejoined = duringOutage;
  let rejoinMs: number | undefined;
  while (performance.now() - restarted < 60_000) {
    rejoined = await client.call("streamState", { service: "orders" }).catch(() => rejoined);
    // Three copies again: a leader and two replicas, the restarted node among them, every one current.
    const names = [rejoined.leader, ...rejoined.replicas.map((r) => r.name)];
    const whole = rejoined.replicas.length === 2 && rejoined.replicas.every((r) => r.current && !r.offline);
    if (whole && names.includes(victim)) {
      rejoinMs = since(restarted);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const after = await client.call("placeOrders", {
    token: carol.token,
    productIds: setup.productIds,
    count: 5,
    requestPrefix: "nats-rejoined",
  });
  const all = [...during.acknowledged, ...after.acknowledged];
  const convergedAfter = await bothReplicas(client, carol, all, 30_000);
  const final = await client.call("streamState", { service: "orders" });
  return {
    victim,
    newLeader: duringOutage.leader,
    replicasConfigured: before.replicasConfigured,
    placedDuringOutage: during.acknowledged.length,
    failedDuringOutage: during.failed,
    relayedMs,
    convergedDuringOutage: converged,
    outageMs,
    rejoinMs,
    placedAfterRejoin: after.acknowledged.length,
    convergedAfterRejoin: convergedAfter,
    stream: final,
  };
}

/** Time until the orders stream holds `messages` messages; undefined if it does not within `timeoutMs`. */
async function relayed(client: ClientSession, messages: number, timeoutMs: number): Promise<number | undefined> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    const state = await client.call("streamState", { service: "orders" }).catch(() => undefined);
    if (state && state.messages >= messages) return since(started);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return undefined;
}

/** Waits until both replicas' EVENTUAL views hold `orderIds`; returns each one's time, count and duplicates. */
async function bothReplicas(
  client: ClientSession,
  who: { userId: string; token: string },
  orderIds: string[],
  timeoutMs: number,
) {
  const [a, b] = await Promise.all(
    ["user-orders-a", "user-orders-b"].map((host) =>
      client.call("awaitOrders", { host, token: who.token, userId: who.userId, orderIds, timeoutMs }),
    ),
  );
  return { a: a!, b: b! };
}

/** 3: user-orders-a and products cannot reach each other; then the link heals. */
export async function partition(cluster: Cluster, client: ClientSession, setup: ScenarioSetup) {
  const view = (host: string, consistency: "STRONG" | "EVENTUAL") =>
    client.call("view", { host, token: setup.aliceToken, userId: setup.aliceId, consistency });
  const baseline = await Promise.all([view("user-orders-a", "STRONG"), view("user-orders-b", "STRONG")]);
  await cluster.partition("user-orders-a", "products");
  const cut = performance.now();
  const samples = { aStrong: [] as ViewSample[], aEventual: [] as ViewSample[], bStrong: [] as ViewSample[] };
  try {
    // Long enough for the first calls to time out and the breaker to open.
    while (performance.now() - cut < 5000) {
      const [aStrong, aEventual, bStrong] = await Promise.all([
        sample(view("user-orders-a", "STRONG")),
        sample(view("user-orders-a", "EVENTUAL")),
        sample(view("user-orders-b", "STRONG")),
      ]);
      samples.aStrong.push(aStrong);
      samples.aEventual.push(aEventual);
      samples.bStrong.push(bStrong);
    }
  } finally {
    await cluster.heal("user-orders-a", "products");
  }
  const healed = performance.now();
  let recoveredMs: number | undefined;
  while (performance.now() - healed < 30_000) {
    const after = await sample(view("user-orders-a", "STRONG"));
    if (after.ok && after.degradations.length === 0 && after.linesWithoutDetails === 0) {
      recoveredMs = since(healed);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    baselineDegradations: baseline.flatMap((b) => b.degradations).length,
    aStrong: summarize(samples.aStrong),
    aEventual: summarize(samples.aEventual),
    bStrong: summarize(samples.bStrong),
    recoveredMs,
  };
}

interface ViewSample {
  ok: boolean;
  error?: string;
  ms: number;
  degradations: { dependency: string; code: string; fallback: string }[];
  lines: number;
  linesWithoutDetails: number;
}

async function sample(
  answer: Promise<{
    degradations: ViewSample["degradations"];
    lines: number;
    linesWithoutDetails: number;
    ms: number;
  }>,
): Promise<ViewSample> {
  const started = performance.now();
  try {
    return { ok: true, ...(await answer) };
  } catch (error) {
    return {
      ok: false,
      error: error instanceof Error ? error.message : String(error),
      ms: since(started),
      degradations: [],
      lines: 0,
      linesWithoutDetails: 0,
    };
  }
}

function summarize(samples: ViewSample[]) {
  const degradations = new Map<string, number>();
  for (const s of samples) {
    for (const d of s.degradations) {
      const key = `${d.dependency} ${d.code} ${d.fallback}`;
      degradations.set(key, (degradations.get(key) ?? 0) + 1);
    }
  }
  const times = samples.map((s) => s.ms).sort((a, b) => a - b);
  return {
    views: samples.length,
    failed: samples.filter((s) => !s.ok).length,
    errors: [...new Set(samples.filter((s) => !s.ok).map((s) => s.error!))],
    degraded: samples.filter((s) => s.degradations.length > 0).length,
    onlyProductsDegraded: samples.every((s) => s.degradations.every((d) => d.dependency === "PRODUCTS")),
    linesWithoutDetails: samples.reduce((n, s) => n + s.linesWithoutDetails, 0),
    lines: samples.reduce((n, s) => n + s.lines, 0),
    degradations: Object.fromEntries(degradations),
    maxMs: Math.round(times.at(-1) ?? 0),
    medianMs: Math.round(times[Math.floor(times.length / 2)] ?? 0),
  };
}

/** 4: orders' host is killed while orders are placed, and started again on its own data. */
export async function ordersRestart(cluster: Cluster, client: ClientSession, setup: ScenarioSetup) {
  const dave = await client.call("signUp", { email: `dave-${cluster.id}@shopmesh.local` });
  const placing = client.call("placeOrders", {
    token: dave.token,
    productIds: setup.productIds,
    count: 60,
    requestPrefix: "orders-restart",
    intervalMs: 100,
  });
  // Let some orders through before the host goes.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  await cluster.killHost("orders");
  const killed = performance.now();
  await cluster.restartHost("orders");
  const downMs = since(killed);
  const placed = await placing;
  const after = await client.call("placeOrders", {
    token: dave.token,
    productIds: setup.productIds,
    count: 5,
    requestPrefix: "orders-restarted",
  });
  const acknowledged = [...placed.acknowledged, ...after.acknowledged];
  const { ids } = await client.call("listOrders", { token: dave.token, userId: dave.userId });
  const present = new Set(ids);
  const converged = await bothReplicas(client, dave, acknowledged, 60_000);
  const stream = await client.call("streamState", { service: "orders" });
  return {
    acknowledged: acknowledged.length,
    acknowledgedAfterRestart: after.acknowledged.length,
    failedWhileDown: placed.failed,
    missingAfterRestart: acknowledged.filter((id) => !present.has(id)).length,
    listedByOrders: ids.length,
    downMs,
    converged,
    stream,
  };
}
