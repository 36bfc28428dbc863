// Run as its own process by `shopmesh overload` (several of them): keeps
// its share of the STRONG views in flight for the given time and prints
// every call's status and latency as one JSON line (see measuring-process.ts).
//
//   node --import tsx view-load-worker.ts '<ViewLoadSettings as JSON>'
import { setMaxListeners } from "node:events";
import { readFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { ConnectError, createClient, createTransport, retryPushbackMs, type GrpcTransport } from "@shopmesh/sdk";
import { statusName } from "@shopmesh/chassis";
import { UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { pauseUntil } from "../bench/load-loop.js";
import { readyAndWaitForGo } from "./measuring-process.js";

export interface ViewLoadSettings {
  target: string;
  /** The mesh's CA certificate file; plaintext when omitted. */
  caFile?: string;
  token: string;
  userId: string;
  concurrency: number;
  connections: number;
  durationMs: number;
  deadlineMs: number | undefined;
  /** A call still unanswered this long after the load's end is given up and counted as ABANDONED. */
  abandonAfterMs: number;
  /**
   * What a caller does after a refusal (RESOURCE_EXHAUSTED) before its next
   * call: wait as long as the server's pushback says, send at once, or wait
   * a fixed time (ms, jittered ±50 %).
   */
  afterRefusal: AfterRefusal;
}

/** See {@link ViewLoadSettings.afterRefusal}. */
export type AfterRefusal = "pushback" | "at-once" | number;

export interface ViewLoadResult {
  /** [status name, latency ms] of every call. */
  outcomes: [string, number][];
  /** The first message of each failing status. */
  messages: Record<string, string>;
  /** The pushback of every refusal that carried one, ms. */
  pushbacks: number[];
  /** This process's event-loop delay: how late it was itself. */
  loopDelay: { p50Ms: number; p99Ms: number; maxMs: number };
}

export const abandoned = "ABANDONED";

async function load(settings: ViewLoadSettings): Promise<ViewLoadResult> {
  const tls = settings.caFile === undefined ? undefined : { ca: readFileSync(settings.caFile), service: "user-orders" };
  const transports: GrpcTransport[] = Array.from({ length: settings.connections }, () =>
    createTransport({
      target: settings.target,
      token: settings.token,
      tls,
      channelOptions: { "grpc.use_local_subchannel_pool": 1 },
    }),
  );
  const views = transports.map((transport) => createClient(UserOrdersService, transport));
  const outcomes: [string, number][] = [];
  const messages: Record<string, string> = {};
  const pushbacks: number[] = [];
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const end = performance.now() + settings.durationMs;
  const abandon = new AbortController();
  // Every call listens to it (Connect and the transport each add a listener): no limit to warn about.
  setMaxListeners(0, abandon.signal);
  const abandonTimer = setTimeout(() => abandon.abort(), settings.durationMs + settings.abandonAfterMs);
  const options = {
    signal: abandon.signal,
    ...(settings.deadlineMs === undefined ? {} : { timeoutMs: settings.deadlineMs }),
  };
  // Each loop also stops after a fixed number of calls, so the count is bounded whatever the speed.
  const perLoop = Math.max(100, Math.ceil(settings.durationMs / 5));
  try {
    await Promise.all(
      Array.from({ length: settings.concurrency }, async (_, index) => {
        const view = views[index % views.length]!;
        for (let n = 0; n < perLoop && performance.now() < end; n++) {
          const at = performance.now();
          try {
            await view.getUserOrders({ userId: settings.userId }, options);
            outcomes.push(["OK", performance.now() - at]);
          } catch (error) {
            const failure = ConnectError.from(error);
            const code = abandon.signal.aborted ? abandoned : statusName(failure.code);
            outcomes.push([code, performance.now() - at]);
            messages[code] ??= failure.rawMessage;
            if (code !== "RESOURCE_EXHAUSTED") continue;
            const pushback = retryPushbackMs(failure);
            if (pushback !== undefined) pushbacks.push(pushback);
            const pause =
              settings.afterRefusal === "pushback"
                ? pushback
                : settings.afterRefusal === "at-once"
                  ? undefined
                  : // Jittered, so that the callers refused together do not come back together.
                    settings.afterRefusal * (0.5 + Math.random());
            // A pause never runs past the load's end.
            if (pause) await pauseUntil(Math.min(performance.now() + pause, end));
          }
        }
      }),
    );
  } finally {
    clearTimeout(abandonTimer);
    loopDelay.disable();
    for (const transport of transports) transport.close();
  }
  return {
    outcomes,
    messages,
    pushbacks,
    loopDelay: {
      p50Ms: loopDelay.percentile(50) / 1e6,
      p99Ms: loopDelay.percentile(99) / 1e6,
      maxMs: loopDelay.max / 1e6,
    },
  };
}

if (process.argv[2] !== undefined) {
  const settings = JSON.parse(process.argv[2]) as ViewLoadSettings;
  await readyAndWaitForGo();
  process.stdout.write(`${JSON.stringify(await load(settings))}\n`);
}
