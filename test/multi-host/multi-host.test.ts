// The multi-host mesh: every process in a network namespace of its own, on
// a bridge the run creates, and the four failures it must survive (a
// replica's host dies, a NATS node dies, a partition, orders restarted),
// each checked against the rules and written up as a report; and a delay on
// the network path beside the same delay inside products. Needs root
// and iproute2; CI runs it once, outside test:parallel (npm run test:multi-host).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { missingPrerequisite } from "../../tools/cli/src/cluster/cluster-command.js";
import { renderSweepReport, runLatencySweep } from "../../tools/cli/src/cluster/latency-sweep.js";
import { renderMultiHostReport } from "../../tools/cli/src/cluster/multi-host-report.js";
import { multiHostProblems, runMultiHost, type MultiHostReport } from "../../tools/cli/src/cluster/multi-host-run.js";
import { natsServer } from "../support/nats-server.js";

const nats = natsServer();
const rootOrIp = process.getuid?.() !== 0 || spawnSync("ip", ["-V"]).error ? "needs root and iproute2" : undefined;
if (rootOrIp) console.warn(`skipped: the multi-host tests: ${missingPrerequisite() ?? rootOrIp}`);

describe.skipIf(rootOrIp !== undefined || nats.missing)("a multi-host mesh in network namespaces", () => {
  it("survives a lost replica, a lost NATS node, a partition and an orders restart, and leaves nothing behind", {
    timeout: 240_000,
  }, async () => {
    const report: MultiHostReport = await runMultiHost({
      command: "npm run test:multi-host",
      natsServer: nats.path,
      progress: (line) => console.log(`multi-host: ${line}`),
    });

    // Nothing of the cluster is left: namespaces, veths, bridge, hosts files.
    const prefix = `shopmesh-${report.cluster.id}-`;
    expect(spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout).not.toContain(prefix);
    expect(spawnSync("ip", ["link", "show"], { encoding: "utf8" }).stdout).not.toContain(`smc${report.cluster.id}`);
    for (const host of report.cluster.hosts) expect(existsSync(`/etc/netns/${prefix}${host.name}`)).toBe(false);

    // 1: both replicas took reads, then one died, and no read failed.
    expect(report.replicaLoss.beforeKill.a).toBeGreaterThan(0);
    expect(report.replicaLoss.beforeKill.b).toBeGreaterThan(0);
    // The messages name what failed, should anything fail.
    expect(report.replicaLoss.reads.messages).toEqual({});
    expect(report.replicaLoss.reads.failed).toEqual({});
    expect(report.replicaLoss.answeredByAAfterKill).toBeGreaterThan(0);

    // 2: three copies of the stream; nothing lost or applied twice; the node came back.
    const lost = report.natsNodeLoss;
    expect(lost.replicasConfigured).toBe(3);
    expect(lost.newLeader).not.toBe(lost.victim);
    expect(lost.convergedAfterRejoin.a).toMatchObject({
      held: lost.placedDuringOutage + lost.placedAfterRejoin,
      duplicates: 0,
    });
    expect(lost.convergedAfterRejoin.b).toMatchObject({
      held: lost.placedDuringOutage + lost.placedAfterRejoin,
      duplicates: 0,
    });
    expect(lost.rejoinMs).toBeDefined();
    expect(lost.stream.contiguous).toBe(true);

    // 3: the cut-off replica's STRONG views degrade by products alone; EVENTUAL and the other replica do not notice.
    const cut = report.partition;
    expect(cut.aStrong.views).toBeGreaterThan(0);
    expect(cut.aStrong).toMatchObject({ failed: 0, degraded: cut.aStrong.views, onlyProductsDegraded: true });
    expect(cut.aStrong.linesWithoutDetails).toBe(cut.aStrong.lines);
    expect(cut.aEventual).toMatchObject({ failed: 0, degraded: 0, linesWithoutDetails: 0 });
    expect(cut.bStrong).toMatchObject({ failed: 0, degraded: 0, linesWithoutDetails: 0 });
    expect(cut.recoveredMs).toBeDefined();

    // 4: every acknowledged order survived the restart, and the events flowed on.
    const restart = report.ordersRestart;
    expect(restart.missingAfterRestart).toBe(0);
    expect(restart.acknowledgedAfterRestart).toBeGreaterThan(0);
    expect(restart.converged.a).toMatchObject({ held: restart.acknowledged, duplicates: 0 });
    expect(restart.converged.b).toMatchObject({ held: restart.acknowledged, duplicates: 0 });

    expect(multiHostProblems(report)).toEqual([]);
    const markdown = renderMultiHostReport(report);
    expect(markdown).toContain("Every scenario behaved as the rules say.");
    expect(markdown).toContain(`| ${report.replicaLoss.reads.ok.toLocaleString("en-US")} |`);
  });

  it("slows a STRONG view by a delay on the network path as by the same delay inside products, and degrades it when products is unavailable either way", {
    timeout: 240_000,
  }, async () => {
    const sweep = await runLatencySweep({
      command: "npm run test:multi-host",
      delaysMs: [0, 100],
      viewsPerPoint: 15,
      outageShares: [0.5],
      outageViews: 60,
      natsServer: nats.path,
      progress: (line) => console.log(`multi-host sweep: ${line}`),
    });
    const [none, delayed] = sweep.points;
    for (const way of ["network", "inService"] as const) {
      // No view can answer before products' delayed answer; the median grows by about the delay (a loaded
      // machine moves medians by tens of milliseconds).
      expect(delayed![way].min).toBeGreaterThanOrEqual(100);
      expect(delayed![way].p50 - none![way].p50).toBeGreaterThan(50);
      expect(delayed![way].p50 - none![way].p50).toBeLessThan(250);
      expect(delayed![way].degraded + none![way].degraded).toBe(0);
      expect({ ...delayed![way].failed, ...none![way].failed }).toEqual({});
    }
    expect(renderSweepReport(sweep)).toContain("| 100 |");

    // Products unavailable half the time: views degrade and none fails, either way; the link's outages,
    // which fail every retry and open the breaker, degrade more of them than failures call by call.
    const [half] = sweep.outages.points;
    for (const way of ["network", "inService"] as const) {
      expect(half![way].failed).toEqual({});
      expect(half![way].degraded).toBeGreaterThan(0);
    }
    expect(half!.network.degraded).toBeGreaterThan(half!.inService.degraded);
    expect(renderSweepReport(sweep)).toContain("| 50 % |");
  });
});
