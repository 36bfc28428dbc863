// One run of the multi-host scenarios: the cluster up, the client host, the
// four scenarios in order, and everything down again whatever happens
// (including Ctrl-C or a SIGTERM while it runs). Its result is the report.
import { thisMachine, type RunMachine } from "../report-files.js";
import { ClientSession } from "./client-session.js";
import { tearDownOnSignal, type HeldCluster } from "./teardown-on-signal.js";
import { Cluster } from "./cluster.js";
import { natsNodeLoss, ordersRestart, partition, prepare, replicaLoss } from "./scenarios.js";

export interface MultiHostReport {
  command: string;
  generatedAt: string;
  machine: RunMachine;
  cluster: { id: string; subnet: string; hosts: { name: string; address: string }[]; upMs: number };
  setup: { catchUpMs: number };
  replicaLoss: Awaited<ReturnType<typeof replicaLoss>>;
  natsNodeLoss: Awaited<ReturnType<typeof natsNodeLoss>>;
  partition: Awaited<ReturnType<typeof partition>>;
  ordersRestart: Awaited<ReturnType<typeof ordersRestart>>;
  /** What teardown could not remove (empty when all went). */
  leftovers: string[];
  totalMs: number;
}

/** Runs the scenarios on a cluster of its own and tears it down. */
export async function runMultiHost(options: {
  command: string;
  progress?: (line: string) => void;
  natsServer?: string;
}): Promise<MultiHostReport> {
  const progress = options.progress ?? (() => undefined);
  const started = performance.now();
  let cluster: Cluster | undefined;
  let client: ClientSession | undefined;
  const held: HeldCluster = {};
  const stopListening = tearDownOnSignal(held, progress);
  try {
    held.creating = Cluster.create({ progress, natsServer: options.natsServer });
    cluster = await held.creating;
    await cluster.start();
    const upMs = Math.round(performance.now() - started);
    client = held.client = await ClientSession.start(cluster);
    progress("seeding, waiting for both projections");
    const setup = await prepare(client);
    progress("1/4 a user-orders replica's host goes away");
    const replica = await replicaLoss(cluster, client, setup);
    progress("2/4 a NATS node goes away");
    const nats = await natsNodeLoss(cluster, client, setup);
    progress("3/4 user-orders-a and products partitioned");
    const cut = await partition(cluster, client, setup);
    progress("4/4 orders' host restarted");
    const restart = await ordersRestart(cluster, client, setup);
    await client.close();
    const leftovers = await cluster.down();
    return {
      command: options.command,
      generatedAt: new Date().toISOString(),
      machine: thisMachine(),
      cluster: {
        id: cluster.id,
        subnet: cluster.network.subnet,
        hosts: cluster.network.hosts.map((h) => ({ name: h.name, address: h.address })),
        upMs,
      },
      setup: { catchUpMs: setup.catchUpMs },
      replicaLoss: replica,
      natsNodeLoss: nats,
      partition: cut,
      ordersRestart: restart,
      leftovers,
      totalMs: Math.round(performance.now() - started),
    };
  } catch (error) {
    // The logs go with the cluster: what they ended with goes to whoever reads the failure.
    if (cluster) progress(`the end of each host's log:\n${cluster.logTails()}`);
    throw error;
  } finally {
    stopListening();
    await client?.close();
    await cluster?.down();
  }
}

/** What a run shows that the rules do not allow; empty when every scenario behaved. */
export function multiHostProblems(report: MultiHostReport): string[] {
  const problems: string[] = [];
  const check = (ok: boolean, problem: string) => {
    if (!ok) problems.push(problem);
  };
  const r = report.replicaLoss;
  check(r.failedReads === 0, `replica loss: ${r.failedReads} reads failed (${JSON.stringify(r.reads.messages)})`);
  check(
    r.beforeKill.a > 0 && r.beforeKill.b > 0,
    "replica loss: the reads did not reach both replicas before the kill",
  );
  check(r.answeredByAAfterKill > 0, "replica loss: user-orders-a answered nothing after the kill");

  const n = report.natsNodeLoss;
  check(n.replicasConfigured === 3, `NATS loss: the orders stream has ${n.replicasConfigured} replicas, not 3`);
  check(Object.keys(n.failedDuringOutage).length === 0, "NATS loss: orders failed while a NATS node was down");
  for (const [phase, converged, expected] of [
    ["during the outage", n.convergedDuringOutage, n.placedDuringOutage],
    ["after the rejoin", n.convergedAfterRejoin, n.placedDuringOutage + n.placedAfterRejoin],
  ] as const) {
    for (const [replica, c] of Object.entries(converged)) {
      check(!c.missing, `NATS loss: user-orders-${replica} lacks ${c.missing} orders ${phase}`);
      check(c.duplicates === 0, `NATS loss: user-orders-${replica} lists ${c.duplicates} orders twice ${phase}`);
      check(c.held === expected, `NATS loss: user-orders-${replica} holds ${c.held} orders ${phase}, not ${expected}`);
    }
  }
  check(n.relayedMs !== undefined, "NATS loss: the relay did not get the orders' events into JetStream");
  check(n.rejoinMs !== undefined, `NATS loss: ${n.victim} did not become a current replica again`);
  check(
    n.stream.unique === n.stream.messages && n.stream.contiguous,
    "NATS loss: the stream's outbox sequences repeat or skip",
  );

  const p = report.partition;
  check(p.baselineDegradations === 0, "partition: views were degraded before the cut");
  check(p.aStrong.failed === 0, `partition: ${p.aStrong.failed} STRONG views from the cut-off replica failed`);
  check(
    p.aStrong.degraded === p.aStrong.views && p.aStrong.onlyProductsDegraded,
    "partition: a STRONG view from the cut-off replica was not degraded by products alone",
  );
  check(
    p.aStrong.linesWithoutDetails === p.aStrong.lines,
    "partition: a STRONG line kept product details it could not have",
  );
  check(
    p.aEventual.failed === 0 && p.aEventual.degraded === 0 && p.aEventual.linesWithoutDetails === 0,
    "partition: the cut-off replica's EVENTUAL views noticed",
  );
  check(
    p.bStrong.failed === 0 && p.bStrong.degraded === 0,
    "partition: the other replica's STRONG views were affected",
  );
  check(p.recoveredMs !== undefined, "partition: STRONG views did not recover after the heal");

  const o = report.ordersRestart;
  check(o.acknowledgedAfterRestart > 0, "orders restart: no order was acknowledged after the restart");
  check(o.missingAfterRestart === 0, `orders restart: ${o.missingAfterRestart} acknowledged orders are missing`);
  for (const [replica, c] of Object.entries(o.converged)) {
    check(
      !c.missing && c.duplicates === 0,
      `orders restart: user-orders-${replica}'s projection is incomplete or doubled`,
    );
  }
  check(
    o.stream.unique === o.stream.messages && o.stream.contiguous,
    "orders restart: the stream's outbox sequences repeat or skip",
  );
  check(report.leftovers.length === 0, `teardown left: ${report.leftovers.join("; ")}`);
  return problems;
}
