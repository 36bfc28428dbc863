// reports/multi-host.md: the multi-host run's figures, rendered for people.
import { runLine } from "../report-files.js";
import { multiHostProblems, type MultiHostReport } from "./multi-host-run.js";

const n = (value: number) => Math.round(value).toLocaleString("en-US");
const s = (ms: number | undefined) => (ms === undefined ? "never" : `${(ms / 1000).toFixed(1)} s`);
const codes = (counts: Record<string, number>) =>
  Object.keys(counts).length === 0
    ? "none"
    : Object.entries(counts)
        .map(([code, count]) => `${n(count)} ${code}`)
        .join(", ");

export function renderMultiHostReport(report: MultiHostReport): string {
  const problems = multiHostProblems(report);
  const { replicaLoss: r, natsNodeLoss: nats, partition: p, ordersRestart: o } = report;
  const verdict = (prefix: string) => {
    const found = problems.filter((problem) => problem.startsWith(prefix));
    return found.length === 0 ? "**As the rules say.**" : `**Not as the rules say: ${found.join("; ")}.**`;
  };
  const hosts = report.cluster.hosts.map((h) => `| ${h.name} | ${h.address} |`).join("\n");
  const partitionRow = (label: string, x: MultiHostReport["partition"]["aStrong"]) =>
    `| ${label} | ${n(x.views)} | ${n(x.failed)} | ${n(x.degraded)} | ${
      Object.entries(x.degradations)
        .map(([what, count]) => `${what} × ${n(count)}`)
        .join("; ") || "none"
    } | ${n(x.linesWithoutDetails)} of ${n(x.lines)} | ${n(x.medianMs)} | ${n(x.maxMs)} |`;
  return `# Multi-host mesh

${runLine(report)}

Every process on a host of its own: a Linux network namespace with its own address on ${report.cluster.subnet}, on a bridge the run created and removed; names from per-host hosts files; mutual TLS between the services (one certificate per host, naming the host, its service and its address); three nats-server nodes clustered with JetStream, every stream with 3 replicas. Clients call \`dns:///user-orders:50054\` with round_robin and the SDK's retries (UNAVAILABLE, up to 5 attempts, backoff from up to 100 ms doubling to 1 s). The cluster was up in ${s(report.cluster.upMs)}; the demo data was seeded and in both replicas' projections ${s(report.setup.catchUpMs)} after that; the whole run took ${s(report.totalMs)}.

**${problems.length === 0 ? "Every scenario behaved as the rules say." : `${problems.length} problem(s): ${problems.join("; ")}.`}**

| host | address |
| --- | --- |
${hosts}

## 1. A user-orders replica's host goes away

Four callers read alice's EVENTUAL view through the round_robin channel for ${s(r.reads.durationMs)}. Once both replicas had answered some (user-orders-a ${n(r.beforeKill.a)}, user-orders-b ${n(r.beforeKill.b)}, from their own metrics), every process on user-orders-b's host was killed (SIGKILL).

| reads | answered | failed | p50 ms | p99 ms | max ms | answered by user-orders-a after the kill |
| ---: | ---: | --- | ---: | ---: | ---: | ---: |
| ${n(r.reads.ok + r.failedReads)} | ${n(r.reads.ok)} | ${codes(r.reads.failed)} | ${r.reads.p50.toFixed(1)} | ${r.reads.p99.toFixed(1)} | ${n(r.reads.max)} | ${n(r.answeredByAAfterKill)} in ${s(r.readingAfterKillMs)} |

${verdict("replica loss")} A call on the dead connection fails with UNAVAILABLE, and grpc-js sends it again, within its deadline, to an address whose connection is up; round_robin stops picking the dead address once its connection has closed. Started again on its own data, user-orders-b's projection was SERVING ${s(r.replicaBackMs)} later.

## 2. A NATS node goes away

The node leading the orders stream (${nats.victim}) was killed; ${nats.newLeader} took over. ${n(nats.placedDuringOutage)} orders were placed right after (failed: ${codes(nats.failedDuringOutage)}); orders' relay and both projections reconnected to the other nodes by themselves.

From the last of those orders, orders' relay had their events in JetStream after ${s(nats.relayedMs)}; the projections:

| | user-orders-a | user-orders-b |
| --- | --- | --- |
| all ${n(nats.placedDuringOutage)} orders in the EVENTUAL view after | ${s(nats.convergedDuringOutage.a.ms)} | ${s(nats.convergedDuringOutage.b.ms)} |
| orders held, duplicates | ${n(nats.convergedDuringOutage.a.held)}, ${n(nats.convergedDuringOutage.a.duplicates)} | ${n(nats.convergedDuringOutage.b.held)}, ${n(nats.convergedDuringOutage.b.duplicates)} |
| after the rejoin and ${n(nats.placedAfterRejoin)} more orders: held, duplicates, time | ${n(nats.convergedAfterRejoin.a.held)}, ${n(nats.convergedAfterRejoin.a.duplicates)}, ${s(nats.convergedAfterRejoin.a.ms)} | ${n(nats.convergedAfterRejoin.b.held)}, ${n(nats.convergedAfterRejoin.b.duplicates)}, ${s(nats.convergedAfterRejoin.b.ms)} |

${verdict("NATS loss")} What takes the time: the stream elects a new leader; a relay or reader whose connection went to the dead node reconnects to another after its backoff; one whose request waited on the old leader gives up when its timeout passes (a relay's publish after 5 s), and a reader whose consumer lived on the dead node finds out when its pull expires and the consumer cannot be asked for, then opens a new one from its stored position. ${nats.victim}, started again on its store, was a current replica of the stream ${s(nats.rejoinMs)} later. At the end the stream held ${n(nats.stream.messages)} messages (${nats.stream.replicasConfigured} replicas, leader ${nats.stream.leader}) whose outbox sequences are ${nats.stream.contiguous && nats.stream.unique === nats.stream.messages ? `1 to ${n(nats.stream.messages)}, each once` : "NOT 1 to n each once"}: no event lost or stored twice.

## 3. user-orders-a and products partitioned

A blackhole route for each other's address in both hosts' namespaces cut the path between user-orders-a and products, and nothing else, for 5 s; alice's view was read all the while, STRONG and EVENTUAL from user-orders-a and STRONG from user-orders-b, one of each at a time. Before the cut no view was degraded (${n(p.baselineDegradations)} degradations).

| views | count | failed | degraded | degradations (dependency, code, fallback) | lines without product details | median ms | max ms |
| --- | ---: | ---: | ---: | --- | --- | ---: | ---: |
${partitionRow("user-orders-a STRONG", p.aStrong)}
${partitionRow("user-orders-a EVENTUAL", p.aEventual)}
${partitionRow("user-orders-b STRONG", p.bStrong)}

${verdict("partition")} The rules: a STRONG view without products still answers, listing the products degradation, and its lines keep ids, quantities and prices but lose the product details; an EVENTUAL view makes no downstream call. The codes are what products' calls ended with: DEADLINE_EXCEEDED while a call waited on a connection that no longer carried anything, UNAVAILABLE once the breaker was open (failing fast) or a new connection was refused. After the heal, user-orders-a's STRONG view was whole again in ${s(p.recoveredMs)}, without a restart.

## 4. orders' host restarted

Orders were placed for a new customer every 100 ms; 1.5 s in, every process on orders' host was killed (SIGKILL) and orders started again on its own SQLite file: ${s(o.downMs)} from the kill to ready. Calls in that window failed (${codes(o.failedWhileDown)}), as they should: nothing acknowledged them.

| acknowledged | after the restart | missing from orders afterwards | listed by orders | user-orders-a: held, duplicates, time | user-orders-b: held, duplicates, time |
| ---: | ---: | ---: | ---: | --- | --- |
| ${n(o.acknowledged)} | ${n(o.acknowledgedAfterRestart)} | ${n(o.missingAfterRestart)} | ${n(o.listedByOrders)} | ${n(o.converged.a.held)}, ${n(o.converged.a.duplicates)}, ${s(o.converged.a.ms)} | ${n(o.converged.b.held)}, ${n(o.converged.b.duplicates)}, ${s(o.converged.b.ms)} |

${verdict("orders restart")} An acknowledged order is committed to orders' SQLite file (synchronous=FULL) with its event before the answer; the relay resumes from the stream's last message, and the projections from their stored positions. The orders stream then held ${n(o.stream.messages)} messages, outbox sequences ${o.stream.contiguous && o.stream.unique === o.stream.messages ? `1 to ${n(o.stream.messages)}, each once` : "NOT 1 to n each once"}.

## Elsewhere

A delay on the network path (a TCP proxy between user-orders-a and products) beside the same delay inside products: \`shopmesh cluster sweep\`, reports/multi-host-sweep.md.

Teardown: ${report.leftovers.length === 0 ? "every namespace, veth, the bridge and the hosts files removed" : report.leftovers.join("; ")}.
`;
}
