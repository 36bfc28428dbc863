// Run as its own process by `shopmesh overload`: checks grpc.health.v1 on
// every service every 100 ms for a given time, then prints what it saw as
// one JSON line (see measuring-process.ts). Apart from the load generator, so that the health figures
// are the services' and not the delay of a client busy with 1,000 calls.
//
//   node --import tsx health-poller.ts <durationMs> <intervalMs> <ca.pem|plaintext> <name>=<host:port> ...
import { readFileSync } from "node:fs";
import { ConnectError, createClient, createTransport } from "@shopmesh/sdk";
import { statusName } from "@shopmesh/chassis";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@shopmesh/sdk/health/v1";
import { readyAndWaitForGo } from "./measuring-process.js";

/** What the poller saw of one service: each check's code ("OK" or the failing status) and latency, and how many answered other than SERVING. */
export interface HealthSeen {
  service: string;
  outcomes: { code: string; ms: number }[];
  notServing: number;
}

/** A check waits this long at most. */
const checkDeadlineMs = 5_000;

async function poll(
  durationMs: number,
  intervalMs: number,
  ca: Buffer | undefined,
  targets: [string, string][],
): Promise<HealthSeen[]> {
  const end = performance.now() + durationMs;
  return Promise.all(
    targets.map(async ([service, address]) => {
      const transport = createTransport({ target: address, tls: ca === undefined ? undefined : { ca, service } });
      const health = createClient(Health, transport);
      const seen: HealthSeen = { service, outcomes: [], notServing: 0 };
      try {
        while (performance.now() < end) {
          const at = performance.now();
          try {
            const answer = await health.check({ service: "" }, { timeoutMs: checkDeadlineMs });
            seen.outcomes.push({ code: "OK", ms: performance.now() - at });
            if (answer.status !== ServingStatus.SERVING) seen.notServing++;
          } catch (error) {
            seen.outcomes.push({ code: statusName(ConnectError.from(error).code), ms: performance.now() - at });
          }
          const wait = at + intervalMs - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        }
      } finally {
        transport.close();
      }
      return seen;
    }),
  );
}

// The mesh's CA certificate file, or "plaintext" for a mesh without TLS.
const [duration, interval, caFile, ...pairs] = process.argv.slice(2);
const ca = caFile === undefined || caFile === "plaintext" ? undefined : readFileSync(caFile);
const targets = pairs.map((pair) => pair.split("=") as [string, string]);
await readyAndWaitForGo();
process.stdout.write(`${JSON.stringify(await poll(Number(duration), Number(interval), ca, targets))}\n`);
