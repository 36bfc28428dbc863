// The multi-host cluster's parts that need no root: names that fit Linux's
// interface limit, the hosts file, the checks a run's figures are held to,
// the committed report being what its figures render to, and the command's
// answers to a command line it cannot use. The cluster
// itself runs in test/multi-host/multi-host.test.ts.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { missingPrerequisite } from "../src/cluster/cluster-command.js";
import { clusterHosts } from "../src/cluster/cluster.js";
import { hostsFileText } from "../src/cluster/hosts-files.js";
import { renderMultiHostReport } from "../src/cluster/multi-host-report.js";
import { multiHostProblems, type MultiHostReport } from "../src/cluster/multi-host-run.js";
import { networkNames, newClusterId } from "../src/cluster/network.js";

const committed = (file: string) => readFileSync(new URL(`../../../reports/${file}`, import.meta.url), "utf8");

describe("cluster names", () => {
  it("fit an interface name (15 characters) and differ from run to run", () => {
    const ids = new Set(Array.from({ length: 50 }, () => newClusterId()));
    expect(ids.size).toBeGreaterThan(45);
    for (const id of ids) {
      const names = networkNames(id);
      expect(names.bridge.length).toBeLessThanOrEqual(15);
      expect(names.veth(clusterHosts.length - 1).length).toBeLessThanOrEqual(15);
      expect(names.namespace("user-orders-a")).toBe(`shopmesh-${id}-user-orders-a`);
    }
  });
});

describe("a host's hosts file", () => {
  it("names loopback, then every host, a service name on each of its replicas", () => {
    expect(
      hostsFileText([
        { address: "10.213.7.16", names: ["user-orders-a", "user-orders"] },
        { address: "10.213.7.17", names: ["user-orders-b", "user-orders"] },
      ]),
    ).toBe("127.0.0.1 localhost\n10.213.7.16 user-orders-a user-orders\n10.213.7.17 user-orders-b user-orders\n");
  });
});

describe("the multi-host report", () => {
  const report = JSON.parse(committed("multi-host.json")) as MultiHostReport;

  it("is what the committed figures render to, and they break no rule", () => {
    expect(renderMultiHostReport(report)).toBe(committed("multi-host.md"));
    expect(multiHostProblems(report)).toEqual([]);
  });

  it("names each rule a run breaks", () => {
    const broken = structuredClone(report);
    broken.replicaLoss.failedReads = 2;
    broken.replicaLoss.reads.failed = { Unavailable: 2 };
    broken.replicaLoss.reads.messages = { Unavailable: "connection dropped" };
    broken.natsNodeLoss.convergedDuringOutage.b.duplicates = 1;
    broken.partition.aEventual.degraded = 1;
    broken.partition.recoveredMs = undefined;
    broken.ordersRestart.missingAfterRestart = 1;
    broken.leftovers = ["ip netns del shopmesh-x-users failed"];
    expect(multiHostProblems(broken)).toEqual([
      'replica loss: 2 reads failed ({"Unavailable":"connection dropped"})',
      "NATS loss: user-orders-b lists 1 orders twice during the outage",
      "partition: the cut-off replica's EVENTUAL views noticed",
      "partition: STRONG views did not recover after the heal",
      "orders restart: 1 acknowledged orders are missing",
      "teardown left: ip netns del shopmesh-x-users failed",
    ]);
    expect(renderMultiHostReport(broken)).toContain("**6 problem(s): replica loss: 2 reads failed");
  });
});

// Each run starts the bin under tsx: seconds apiece on a loaded two-core machine.
describe("shopmesh cluster", { timeout: 60_000 }, () => {
  const bin = fileURLToPath(new URL("../bin/shopmesh.mjs", import.meta.url));
  const run = (args: string[]) => spawnSync(process.execPath, [bin, "cluster", ...args], { encoding: "utf8" });

  it("names an unknown subcommand and exits 2", () => {
    const result = run(["sideways"]);
    expect([result.status, result.stderr]).toEqual([
      2,
      "shopmesh cluster: unknown subcommand 'sideways'\nRun 'shopmesh cluster --help' for its options.\n",
    ]);
  });

  it("says what it needs, or what is wrong with exec's command line, or that there is nothing to take down", () => {
    const dir = mkdtempSync(join(tmpdir(), "shopmesh-cluster-cli-"));
    try {
      const missing = missingPrerequisite();
      const exec = run(["exec", "client", "--dir", dir]);
      const down = run(["down", "--dir", dir]);
      if (missing) {
        expect([exec.status, exec.stderr]).toEqual([1, `shopmesh cluster: ${missing}\n`]);
        expect(down.status).toBe(1);
      } else {
        expect([exec.status, exec.stderr]).toEqual([
          2,
          "shopmesh cluster: exec: give the command after --\nRun 'shopmesh cluster --help' for its options.\n",
        ]);
        expect([down.status, down.stdout]).toEqual([0, `shopmesh cluster: no cluster recorded in ${dir}\n`]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
