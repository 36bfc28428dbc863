import { ConnectError } from "@connectrpc/connect";
import { createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { waitForOrders, type OrdersBack } from "../orders-ready.js";
import { viewSender, warmUp, type ScenarioContext } from "../scenario-context.js";
import { countKinds, quantile, spread, type Spread } from "../statistics.js";
import { answerKinds, codeName, runPaced, sampleView, type AnswerKind, type ViewSample } from "../view-load.js";
import { VisibilityWatcher } from "../visibility-watcher.js";

export interface OutageSecond {
  second: number;
  counts: Record<AnswerKind, number>;
  p50: number;
  p99: number;
}

/** The EVENTUAL views sent beside the STRONG ones through the outage. */
export interface EventualThroughOutage {
  timeline: OutageSecond[];
  n: number;
  counts: Record<AnswerKind, number>;
  duringOutage: Record<AnswerKind, number>;
  /** Latency of the EVENTUAL answers sent while products was down. */
  latencyDuringOutage: { p50: number; p99: number };
  /** First EVENTUAL answer after the kill that reported the products stream disconnected, ms after the kill. */
  productsStreamLostAfterKillMs: number | undefined;
  /** First EVENTUAL answer after products was ready that reported its stream connected again, ms after ready. */
  productsStreamBackAfterReadyMs: number | undefined;
}

/** Sign-ups made through the run and when the EVENTUAL view first knew each new user. */
export interface SignUpStaleness {
  ratePerSecond: number;
  failed: number;
  unseen: number;
  pollIntervalMs: number;
  resolutionMs: number;
  /** Sign-ups acknowledged while products was down (kill to ready). */
  duringOutage: Spread;
  /** The others. */
  outside: Spread;
  points: { ackAtMs: number; stalenessMs: number }[];
}

/** A CreateOrder tried while products was down. */
export interface OrderAttempt {
  atMs: number;
  code: string;
  latencyMs: number;
}

export interface OutageResult {
  timeline: OutageSecond[];
  n: number;
  counts: Record<AnswerKind, number>;
  ratePerSecond: number;
  durationMs: number;
  /** When products was killed, and when its restart was ready, ms into the run. */
  killedAtMs: number;
  restartedAtMs: number;
  restartReadyAtMs: number;
  /** First degraded answer sent after the kill, ms after it. */
  firstDegradedAfterKillMs: number | undefined;
  /** Last non-full answer sent after the restart was ready, ms after that (0: none). */
  recoveredAfterReadyMs: number;
  /** Answers during the outage (kill to restart ready) by kind. */
  duringOutage: Record<AnswerKind, number>;
  /** Scheduled calls not sent because `maxInFlight` were already waiting. */
  skipped: number;
  maxInFlight: number;
  eventual: EventualThroughOutage;
  signUps: SignUpStaleness;
  orderAttempts: OrderAttempt[];
  /** How soon orders accepted an order again after products was back (undefined: the restart did not happen). */
  ordersBack: OrdersBack | undefined;
}

/**
 * Products killed (SIGKILL) in the middle of a steady stream of views and
 * started again: answers per second by kind, and latency. Beside every
 * STRONG view an EVENTUAL one is sent for another customer, at the same
 * rate; new customers sign up throughout (the one write that does not need
 * products), and the EVENTUAL view is watched for each of them; a few
 * orders are tried while products is down.
 */
export async function outage(context: ScenarioContext): Promise<OutageResult> {
  const durationMs = context.quick ? 8_000 : 30_000;
  const ratePerSecond = context.quick ? 30 : 50;
  const signUpRate = 5;
  const killAtMs = durationMs * 0.25;
  const restartAtMs = durationMs * 0.55;
  await context.mesh.configureAggregator({});
  await context.mesh.setFaults({});
  const token = await context.token();
  const strongSend = await viewSender(context, 2000);
  const eventualClient = context.mesh.view(token);
  const users = context.dataset.users;
  let eventualOffset = Math.floor(users.length / 2);
  const eventualSend = (_index: number, runStart: number) =>
    sampleView(eventualClient, users[eventualOffset++ % users.length]!.id, 2000, runStart, "eventual");
  // Every even call is STRONG, every odd one EVENTUAL: both at `ratePerSecond`, interleaved.
  const send = (index: number, runStart: number) =>
    index % 2 === 0 ? strongSend(index, runStart) : eventualSend(index, runStart);
  await warmUp(strongSend);
  await warmUp(eventualSend);

  const transports: GrpcTransport[] = [];
  const open = (service: "users" | "orders", bearer?: string) => {
    const transport = createTransport({
      target: context.mesh.address(service),
      token: bearer,
      tls: context.mesh.clientTls(service),
    });
    transports.push(transport);
    return transport;
  };
  const usersClient = createClient(UsersService, open("users"));
  const customer = users[1]!;
  const { session } = await usersClient.signIn({ email: customer.email, password: "password-2" });
  const customerOrders = createClient(OrdersService, open("orders", session!.accessToken));
  const product = context.dataset.products[0]!;

  const expected = (durationMs / 1000) * ratePerSecond;
  context.progress.begin("outage", expected);
  let done = 0;
  const runStart = performance.now();
  const watcher = new VisibilityWatcher(
    context.mesh.address("user-orders"),
    token,
    runStart,
    context.mesh.clientTls("user-orders"),
  );
  const orderAttempts: OrderAttempt[] = [];
  const tryOrder = async (label: string) => {
    const sent = performance.now();
    const code = await customerOrders
      .createOrder(
        { requestId: `outage-${label}`, items: [{ productId: product.id, quantity: 1 }] },
        { timeoutMs: 5000 },
      )
      .then(
        () => "OK",
        (error: unknown) => codeName(ConnectError.from(error).code),
      );
    orderAttempts.push({ atMs: sent - runStart, code, latencyMs: performance.now() - sent });
  };
  let ordersBack = undefined as Promise<OrdersBack> | undefined;
  let signUpsFailed = 0;
  const maxInFlight = 128;
  try {
    const downMs = restartAtMs - killAtMs;
    const [run] = await Promise.all([
      runPaced({
        ratePerSecond: 2 * ratePerSecond,
        durationMs,
        maxInFlight,
        runStart,
        send,
        events: [
          { atMs: killAtMs, run: () => context.mesh.kill("products") },
          ...[0.3, 0.6, 0.9].map((share, i) => ({ atMs: killAtMs + share * downMs, run: () => tryOrder(`${i}`) })),
          {
            atMs: restartAtMs,
            run: async () => {
              await context.mesh.restart("products");
              const readyAtMs = performance.now() - runStart;
              ordersBack = waitForOrders(customerOrders, product.id, runStart + readyAtMs, "after-outage");
            },
          },
        ],
        onSample: (s) => {
          if (s.consistency === "strong")
            context.progress.update(
              ++done,
              s.atMs < killAtMs ? "before" : s.atMs < restartAtMs ? "products down" : "after restart",
            );
        },
      }),
      runPaced<undefined>({
        ratePerSecond: signUpRate,
        durationMs,
        maxInFlight: 8,
        runStart,
        events: [],
        send: async (index) => {
          const email = `signup-${index}@outage.experiment.shopmesh.local`;
          try {
            const { user } = await usersClient.signUp(
              { email, password: `signup-password-${index}`, displayName: `Sign-up ${index}` },
              { timeoutMs: 5000 },
            );
            const userId = user!.id;
            watcher.watch({
              key: userId,
              userId,
              ackAtMs: performance.now() - runStart,
              shows: (r) => r.profile?.userId === userId,
            });
          } catch {
            signUpsFailed++;
          }
          return undefined;
        },
      }),
    ]);
    const unseenSignUps = await watcher.drain(20_000);
    const accepted = await ordersBack;

    const killed = run.events[0]!;
    const restarted = run.events.at(-1)!;
    const restartReadyAtMs = restarted.doneMs;
    const all = run.samples.sort((a, b) => a.atMs - b.atMs);
    const samples = all.filter((s) => s.consistency === "strong");
    const eventual = all.filter((s) => s.consistency === "eventual");
    const during = (s: { atMs: number }) => s.atMs >= killed.atMs && s.atMs < restartReadyAtMs;
    const firstDegraded = samples.find((s) => s.atMs >= killed.atMs && s.kind !== "full");
    const lastBad = samples.filter((s) => s.atMs >= restartReadyAtMs && s.kind !== "full").at(-1);
    const lost = eventual.find((s) => s.atMs >= killed.atMs && s.streams?.disconnected.includes("products"));
    const back = eventual.find(
      (s) => s.atMs >= restartReadyAtMs && s.streams !== undefined && !s.streams.disconnected.includes("products"),
    );
    const eventualDuring = eventual.filter(during);
    const signUps = watcher.seen.map((v) => ({ ackAtMs: v.ackAtMs, stalenessMs: v.stalenessMs }));
    const result: OutageResult = {
      timeline: perSecond(samples, durationMs),
      n: samples.length,
      counts: countKinds(samples),
      ratePerSecond,
      durationMs,
      killedAtMs: killed.atMs,
      restartedAtMs: restarted.atMs,
      restartReadyAtMs,
      firstDegradedAfterKillMs: firstDegraded ? firstDegraded.atMs - killed.atMs : undefined,
      recoveredAfterReadyMs: lastBad ? lastBad.atMs + lastBad.latencyMs - restartReadyAtMs : 0,
      duringOutage: countKinds(samples.filter(during)),
      skipped: run.skipped,
      maxInFlight,
      eventual: {
        timeline: perSecond(eventual, durationMs),
        n: eventual.length,
        counts: countKinds(eventual),
        duringOutage: countKinds(eventualDuring),
        latencyDuringOutage: {
          p50: quantile(
            eventualDuring.map((s) => s.latencyMs),
            0.5,
          ),
          p99: quantile(
            eventualDuring.map((s) => s.latencyMs),
            0.99,
          ),
        },
        productsStreamLostAfterKillMs: lost ? lost.atMs + lost.latencyMs - killed.atMs : undefined,
        productsStreamBackAfterReadyMs: back ? back.atMs + back.latencyMs - restartReadyAtMs : undefined,
      },
      signUps: {
        ratePerSecond: signUpRate,
        failed: signUpsFailed,
        unseen: unseenSignUps,
        pollIntervalMs: watcher.intervalMs,
        resolutionMs: quantile(
          watcher.seen.map((v) => v.windowMs),
          0.5,
        ),
        duringOutage: spread(signUps.filter((p) => during({ atMs: p.ackAtMs })).map((p) => p.stalenessMs)),
        outside: spread(signUps.filter((p) => !during({ atMs: p.ackAtMs })).map((p) => p.stalenessMs)),
        points: signUps.sort((a, b) => a.ackAtMs - b.ackAtMs),
      },
      orderAttempts: orderAttempts.sort((a, b) => a.atMs - b.atMs),
      ordersBack: accepted,
    };
    context.progress.end(
      `${samples.length} answers; during the outage STRONG ${answerKinds.map((k) => `${result.duringOutage[k]} ${k}`).join(", ")}; EVENTUAL ${answerKinds.map((k) => `${result.eventual.duringOutage[k]} ${k}`).join(", ")}`,
    );
    return result;
  } finally {
    await watcher.stop();
    for (const transport of transports) transport.close();
  }
}

/** Answers per second by kind, and latency. */
function perSecond(samples: readonly ViewSample[], durationMs: number): OutageSecond[] {
  const timeline: OutageSecond[] = [];
  for (let second = 0; second < Math.ceil(durationMs / 1000); second++) {
    const inSecond = samples.filter((s) => Math.floor(s.atMs / 1000) === second);
    const latencies = inSecond.map((s) => s.latencyMs);
    timeline.push({
      second,
      counts: countKinds(inSecond),
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
    });
  }
  return timeline;
}
