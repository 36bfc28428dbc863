import { randomBytes } from "node:crypto";
import { ConnectError } from "@connectrpc/connect";
import { type ClientTlsOptions, createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { Consistency, Dependency, UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { type LoadSample, type LoadState, maxLoadRate, minLoadRate } from "../summary-types.js";

export interface ViewLoadOptions {
  /** user-orders' gRPC address now; undefined while it is not running. */
  target: () => string | undefined;
  /** TLS for the connection to user-orders, undefined without TLS; asked for when a connection is made. */
  tls: () => ClientTlsOptions | undefined;
  /** Each view's deadline. */
  timeoutMs?: number;
  /** A load stops by itself this long after it was (re)started. */
  maxDurationMs?: number;
  /** How long results are kept for the chart. */
  keepMs?: number;
}

/** Views in flight at once, at most: with a dependency hanging, each waits for its deadline. */
const maxInFlight = 40;

/** A W3C traceparent with the sampled flag, so that the services record the view's spans. */
export function sampledTraceparent(): { traceparent: string; traceId: string } {
  const traceId = randomBytes(16).toString("hex");
  return { traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01`, traceId };
}

/**
 * The console's built-in steady load: GetUserOrders views of one user,
 * STRONG and EVENTUAL in turn, at a rate the page sets, each sent with a
 * sampled traceparent so that its trace can be drawn. Off until started,
 * bounded in time, and stopped when nobody watches.
 */
export class ViewLoad {
  readonly #options: Required<ViewLoadOptions>;
  #rate = 0;
  #token = "";
  #userId = "";
  #timer: NodeJS.Timeout | undefined;
  #endsAtMs: number | null = null;
  #inFlight = 0;
  #next: "STRONG" | "EVENTUAL" = "STRONG";
  #samples: LoadSample[] = [];
  #transport: { target: string; transport: GrpcTransport } | undefined;

  constructor(options: ViewLoadOptions) {
    this.#options = { timeoutMs: 1000, maxDurationMs: 10 * 60_000, keepMs: 60_000, ...options };
  }

  /**
   * Sends `ratePerSecond` views of `userId` a second, held to `minLoadRate`
   * to `maxLoadRate` (0, or anything not above it, stops), with the given
   * access token.
   */
  set(ratePerSecond: number, token: string, userId: string): void {
    this.stop();
    // Written so that NaN stops too: as a timer's delay it would mean every millisecond.
    if (!(ratePerSecond > 0)) return;
    this.#rate = Math.min(Math.max(ratePerSecond, minLoadRate), maxLoadRate);
    this.#token = token;
    this.#userId = userId;
    this.#endsAtMs = Date.now() + this.#options.maxDurationMs;
    this.#timer = setInterval(() => this.#tick(), 1000 / this.#rate);
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#rate = 0;
    this.#endsAtMs = null;
  }

  state(nowMs = Date.now()): LoadState {
    this.#forgetBefore(nowMs - this.#options.keepMs);
    return { ratePerSecond: this.#rate, endsAtMs: this.#endsAtMs, samples: [...this.#samples] };
  }

  /** Stops and closes the connection to user-orders. */
  close(): void {
    this.stop();
    this.#transport?.transport.close();
    this.#transport = undefined;
  }

  #forgetBefore(ms: number): void {
    const first = this.#samples.findIndex((s) => s.atMs >= ms);
    this.#samples = first === -1 ? [] : this.#samples.slice(first);
  }

  #client(): ReturnType<typeof createClient<typeof UserOrdersService>> | undefined {
    const target = this.#options.target();
    if (target === undefined) return undefined;
    if (this.#transport?.target !== target) {
      this.#transport?.transport.close();
      this.#transport = { target, transport: createTransport({ target, tls: this.#options.tls() }) };
    }
    return createClient(UserOrdersService, this.#transport.transport);
  }

  #tick(): void {
    if (this.#endsAtMs !== null && Date.now() >= this.#endsAtMs) {
      this.stop();
      return;
    }
    if (this.#inFlight >= maxInFlight) return;
    const consistency = this.#next;
    this.#next = consistency === "STRONG" ? "EVENTUAL" : "STRONG";
    const { traceparent, traceId } = sampledTraceparent();
    const atMs = Date.now();
    const started = performance.now();
    const record = (outcome: LoadSample["outcome"], detail: string) =>
      this.#samples.push({ atMs, consistency, latencyMs: performance.now() - started, outcome, detail, traceId });
    const client = this.#client();
    if (client === undefined) {
      record("failed", "user-orders is not running");
      return;
    }
    this.#inFlight += 1;
    client
      .getUserOrders(
        {
          userId: this.#userId,
          consistency: consistency === "STRONG" ? Consistency.STRONG : Consistency.EVENTUAL,
        },
        {
          timeoutMs: this.#options.timeoutMs,
          headers: { authorization: `Bearer ${this.#token}`, traceparent },
        },
      )
      .then(
        (view) => {
          const degraded = view.degradations.map((d) => `${Dependency[d.dependency].toLowerCase()} ${d.code}`);
          if (view.staleOrders !== undefined) degraded.push("stale orders");
          record(degraded.length > 0 ? "degraded" : "full", degraded.join(", "));
        },
        (error: unknown) => record("failed", ConnectError.from(error).message),
      )
      .finally(() => {
        this.#inFlight -= 1;
      });
  }
}
