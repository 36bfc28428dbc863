import { ConnectError, type Client } from "@connectrpc/connect";
import { createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { Consistency } from "@shopmesh/sdk/userorders/v1";
import { forEachConcurrent } from "../concurrency.js";
import { waitForProjection } from "../../mesh/projection-progress.js";
import { waitForOrders } from "../orders-ready.js";
import { crossStreamProbe, type CrossStreamProbe } from "../cross-stream-probe.js";
import type { ScenarioContext } from "../scenario-context.js";
import { quantile, spread, type Spread } from "../statistics.js";
import { outageStalenessMs } from "../theory.js";
import { codeName, runPaced, streamStates } from "../view-load.js";
import { VisibilityWatcher, type Visibility } from "../visibility-watcher.js";

/** Which part of the run a write belongs to. */
export type WritePhase = "steady" | "outage" | "after";

/** One order placed by the writer, and when the EVENTUAL view first showed it. */
export interface StalenessWrite {
  ackAtMs: number;
  stalenessMs: number;
  phase: WritePhase;
}

export interface StalenessResult {
  writeRatePerSecond: number;
  durationMs: number;
  /** Customers the writer cycles through (each order is placed with its owner's token). */
  customers: number;
  pollIntervalMs: number;
  /** Median uncertainty window of a staleness figure (see Visibility.windowMs): the resolution. */
  resolutionMs: number;
  /** Writes acknowledged before the kill and seen before it. */
  steady: Spread;
  /** Every write, for the timeline. */
  writes: StalenessWrite[];
  writesFailed: number;
  /** Why writes failed: status code names and how often. */
  writeFailures: Record<string, number>;
  /** Writes never seen before the watcher gave up. */
  unseen: number;
  outage: {
    killedAtMs: number;
    restartedAtMs: number;
    readyAtMs: number;
    /** Writes acknowledged while user-orders was down or restarting (kill to ready), plus any acknowledged before the kill but not seen by then. */
    staleness: Spread;
    /** ready - ack for the same writes: the rest of the outage plus the restart. */
    remaining: Spread;
    /** staleness - (ready - ack): what the write waited beyond the reader being back. */
    residual: Spread;
    /** From ready until every write made before it was visible. */
    catchUpMs: number;
    /** From ready until the watcher's first answered poll arrived, and until it was sent. */
    firstAnswerMs: number;
    firstAnswerSentMs: number;
  };
  /** Writes acknowledged after user-orders was ready again. */
  after: Spread;
  /**
   * The products stream held back by an injected fault on products'
   * StreamEvents, set a moment before the kill: whether the established
   * stream stayed connected under it, and what an EVENTUAL view showed
   * after the restart, while the refused stream could not reconnect.
   */
  streamFault: {
    setAtMs: number;
    /** From an EVENTUAL view taken just before the kill (undefined: none answered). */
    productsConnectedUnderFault: boolean | undefined;
    probe: CrossStreamProbe;
  };
}

/**
 * Staleness of the EVENTUAL view: a writer places orders at a steady rate
 * (CreateOrder with the customer's own token); each order is watched for in
 * its customer's EVENTUAL view, polled every couple of milliseconds, from
 * the acknowledgement until an answer lists it. Part way through,
 * user-orders, the reader, is killed (SIGKILL) while the writes go on, and
 * started again on its port: the writes made meanwhile can only appear after
 * it is back and has read the events it missed. Products' StreamEvents is
 * refused (an injected fault) from a second before the kill until a moment
 * after the restart, to show that an open stream is not affected and what
 * a view looks like while a new one is refused (see crossStreamProbe).
 */
export async function staleness(context: ScenarioContext): Promise<StalenessResult> {
  const quick = context.quick;
  const writeRatePerSecond = quick ? 15 : 20;
  const durationMs = quick ? 8_000 : 36_000;
  const killAtMs = quick ? 3_000 : 18_000;
  const restartAtMs = killAtMs + (quick ? 1_500 : 4_000);
  const customers = Math.min(quick ? 20 : 40, context.dataset.users.length);
  const products = context.dataset.products;

  // EVENTUAL reads do not depend on the aggregator's settings; keep the defaults so a restart restores them.
  await context.mesh.configureAggregator({});
  await context.mesh.setFaults({});

  // Each order is placed with its owner's token, as a customer would.
  const transports: GrpcTransport[] = [];
  let watcher: VisibilityWatcher | undefined;
  const liftStreamFault = () => context.mesh.setMethodFault("products", "StreamEvents");
  try {
    const signIn = createClient(
      UsersService,
      track(
        transports,
        createTransport({ target: context.mesh.address("users"), tls: context.mesh.clientTls("users") }),
      ),
    );
    const writers: { userId: string; orders: Client<typeof OrdersService> }[] = new Array(customers);
    await forEachConcurrent(
      Array.from({ length: customers }, (_, i) => i),
      4,
      async (i) => {
        const user = context.dataset.users[i]!;
        const { session } = await signIn.signIn({ email: user.email, password: `password-${i + 1}` });
        const transport = track(
          transports,
          createTransport({
            target: context.mesh.address("orders"),
            token: session!.accessToken,
            tls: context.mesh.clientTls("orders"),
          }),
        );
        writers[i] = { userId: user.id, orders: createClient(OrdersService, transport) };
      },
    );

    // Readiness: orders must be able to price an order (after the products outage before this, its
    // channel to products may still be waiting to reconnect), so one order is tried until it goes through.
    const ready = await waitForOrders(writers[0]!.orders, products[0]!.id, performance.now(), "staleness-ready");
    if (Number.isNaN(ready.afterReadyMs))
      throw new Error(`orders did not accept an order within 30 s (${ready.firstRefusal})`);

    const token = await context.token();
    // The stream fault below is meant for an open products stream; after the products outage
    // before this, the projection's follower may still be waiting to reconnect, so wait until it
    // reports every stream connected and caught up.
    const streams = await waitForProjection({
      target: context.mesh.address("user-orders"),
      tls: context.mesh.clientTls("user-orders"),
      token,
      userId: writers[0]!.userId,
      timeoutMs: 30_000,
    });
    if (!streams.caughtUp)
      throw new Error("user-orders' projection did not report every stream connected and caught up within 30 s");
    const adminProducts = createClient(
      ProductsService,
      track(
        transports,
        createTransport({ target: context.mesh.address("products"), token, tls: context.mesh.clientTls("products") }),
      ),
    );
    const streamFaultAtMs = Math.max(0, killAtMs - 1000);
    const holdMs = quick ? 1000 : 2000;
    let productsConnectedUnderFault: boolean | undefined;
    let probe: Promise<CrossStreamProbe> | undefined;

    const expected = Math.round((durationMs / 1000) * writeRatePerSecond);
    context.progress.begin("staleness", expected);
    const runStart = performance.now();
    const visibility = new VisibilityWatcher(
      context.mesh.address("user-orders"),
      token,
      runStart,
      context.mesh.clientTls("user-orders"),
    );
    watcher = visibility;
    let writesFailed = 0;
    const writeFailures: Record<string, number> = {};
    let done = 0;
    const run = await runPaced<{ ackAtMs: number } | undefined>({
      ratePerSecond: writeRatePerSecond,
      durationMs,
      // Writes go on for a while after user-orders is ready again, however long its start took.
      afterEventsMs: quick ? 2_000 : 8_000,
      maxInFlight: 16,
      runStart,
      send: async (index) => {
        const writer = writers[index % customers]!;
        const items = [0, 1].map((line) => ({
          productId: products[(index * 7 + line * 13) % products.length]!.id,
          quantity: 1 + line,
        }));
        try {
          const { order } = await writer.orders.createOrder(
            { requestId: `staleness-${index}`, items },
            { timeoutMs: 5000 },
          );
          const ackAtMs = performance.now() - runStart;
          const orderId = order!.id;
          visibility.watch({
            key: orderId,
            userId: writer.userId,
            ackAtMs,
            shows: (r) => r.orders.some((o) => o.orderId === orderId),
          });
          return { ackAtMs };
        } catch (error) {
          writesFailed++;
          const failure = ConnectError.from(error);
          const key = `${codeName(failure.code)}: ${failure.rawMessage}`;
          writeFailures[key] = (writeFailures[key] ?? 0) + 1;
          return undefined;
        }
      },
      events: [
        // A fault on products' StreamEvents while the projection's stream is open: only a new stream would meet it.
        {
          atMs: streamFaultAtMs,
          run: () =>
            context.mesh.setMethodFault("products", "StreamEvents", { errorRate: 1, errorCode: "UNAVAILABLE" }),
        },
        {
          atMs: killAtMs - 100,
          run: async () => {
            const view = await context.mesh
              .view(token)
              .getUserOrders(
                { userId: writers[0]!.userId, pageSize: 1, consistency: Consistency.EVENTUAL },
                { timeoutMs: 1000 },
              )
              .catch(() => undefined);
            productsConnectedUnderFault = view ? !streamStates(view).disconnected.includes("products") : undefined;
          },
        },
        { atMs: killAtMs, run: () => context.mesh.kill("user-orders") },
        {
          atMs: restartAtMs,
          run: async () => {
            await context.mesh.restart("user-orders");
            // The restarted process opens new streams: products' is refused until the fault is lifted.
            probe = crossStreamProbe({
              products: adminProducts,
              orders: writers[0]!.orders,
              view: context.mesh.view(token),
              customerId: writers[0]!.userId,
              holdMs,
              lift: liftStreamFault,
            }).catch((error: unknown) => ({
              holdMs,
              orderSeenMs: undefined,
              faultLiftedMs: undefined,
              detailsSeenMs: undefined,
              incompleteAnswers: 0,
              incompleteWithDegradation: 0,
              incompleteWithProductsDisconnected: 0,
              incompleteWithProductsBehind: 0,
              error: error instanceof Error ? error.message : String(error),
            }));
          },
        },
      ],
      onSample: (sample) => {
        const at = sample?.ackAtMs ?? 0;
        context.progress.update(
          ++done,
          at < killAtMs ? "steady" : at < restartAtMs ? "user-orders down" : "after restart",
        );
      },
    });
    const unseen = await visibility.drain(30_000);
    const probeResult = await probe!;
    // Events in the order they were scheduled: stream fault, view, kill, restart.
    const killed = run.events[2]!;
    const restarted = run.events[3]!;
    const readyAtMs = restarted.doneMs;
    const killedAtMs = killed.atMs;
    const result = summarise(visibility.seen, { killedAtMs, restartedAtMs: restarted.atMs, readyAtMs });
    const firstAnswer = visibility.recoveries.find((at) => at.receivedMs >= readyAtMs);
    const stalenessResult: StalenessResult = {
      writeRatePerSecond,
      durationMs: run.durationMs,
      customers,
      pollIntervalMs: visibility.intervalMs,
      resolutionMs: quantile(
        visibility.seen.map((v) => v.windowMs),
        0.5,
      ),
      ...result,
      writesFailed,
      writeFailures,
      unseen,
      streamFault: { setAtMs: streamFaultAtMs, productsConnectedUnderFault, probe: probeResult },
      outage: {
        ...result.outage,
        killedAtMs,
        restartedAtMs: restarted.atMs,
        readyAtMs,
        firstAnswerMs: firstAnswer === undefined ? Number.NaN : firstAnswer.receivedMs - readyAtMs,
        firstAnswerSentMs: firstAnswer === undefined ? Number.NaN : firstAnswer.sentMs - readyAtMs,
      },
    };
    context.progress.end(
      `${visibility.seen.length} writes seen; steady p50 ${stalenessResult.steady.p50.toFixed(1)} ms, p99 ${stalenessResult.steady.p99.toFixed(1)} ms; during the outage up to ${(stalenessResult.outage.staleness.max / 1000).toFixed(2)} s`,
    );
    return stalenessResult;
  } finally {
    await liftStreamFault().catch(() => undefined);
    await watcher?.stop();
    for (const transport of transports) transport.close();
  }
}

/** Splits the seen writes into the phases of the run and summarises each. */
function summarise(
  seen: readonly Visibility[],
  times: { killedAtMs: number; restartedAtMs: number; readyAtMs: number },
): Pick<StalenessResult, "steady" | "after" | "writes"> & {
  outage: Omit<
    StalenessResult["outage"],
    "killedAtMs" | "restartedAtMs" | "readyAtMs" | "firstAnswerMs" | "firstAnswerSentMs"
  >;
} {
  const phaseOf = (v: Visibility): WritePhase => {
    if (v.ackAtMs < times.killedAtMs && v.seenAtMs < times.killedAtMs) return "steady";
    if (v.ackAtMs < times.readyAtMs) return "outage";
    return "after";
  };
  const writes = seen
    .map((v) => ({ ackAtMs: v.ackAtMs, stalenessMs: v.stalenessMs, phase: phaseOf(v) }))
    .sort((a, b) => a.ackAtMs - b.ackAtMs);
  const inPhase = (phase: WritePhase) => writes.filter((w) => w.phase === phase);
  const outage = inPhase("outage");
  const lastSeen = Math.max(...seen.filter((v) => phaseOf(v) === "outage").map((v) => v.seenAtMs));
  return {
    writes,
    steady: spread(inPhase("steady").map((w) => w.stalenessMs)),
    after: spread(inPhase("after").map((w) => w.stalenessMs)),
    outage: {
      staleness: spread(outage.map((w) => w.stalenessMs)),
      // The model without its catch-up term: what the outage and the restart alone explain.
      remaining: spread(outage.map((w) => outageStalenessMs(w.ackAtMs, times.readyAtMs))),
      residual: spread(outage.map((w) => w.stalenessMs - outageStalenessMs(w.ackAtMs, times.readyAtMs))),
      catchUpMs: outage.length ? lastSeen - times.readyAtMs : Number.NaN,
    },
  };
}

function track(transports: GrpcTransport[], transport: GrpcTransport): GrpcTransport {
  transports.push(transport);
  return transport;
}
