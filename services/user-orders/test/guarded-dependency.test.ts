// The guard on its own: what it retries and hedges depends on the method's
// declared idempotency, read from the generated descriptor.
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { hedges, metricsRegistry, retries } from "@shopmesh/chassis";
import { CallBudget } from "../src/call-budget.js";
import { GuardedDependency, type GuardSettings } from "../src/resilience/guarded-dependency.js";
import { recordingLog } from "./support/fake-dependencies.js";

const settings: GuardSettings = {
  timeoutMs: 500,
  hedgeDelayMs: 20,
  retries: 3,
  retryBaseDelayMs: 5,
  retryMaxDelayMs: 20,
  breakerFailures: 5,
  breakerCooldownMs: 1000,
};

/** A send that fails UNAVAILABLE after `ms`, counting its calls. */
function failingSend(ms: number) {
  const sent: AbortSignal[] = [];
  const send = async ({ signal }: { signal: AbortSignal }) => {
    sent.push(signal);
    await sleep(ms);
    throw new ConnectError("down", Code.Unavailable);
  };
  return { sent, send };
}

describe("GuardedDependency", () => {
  const signal = new AbortController().signal;

  it("retries and hedges a method declared NO_SIDE_EFFECTS", async () => {
    const guard = new GuardedDependency("users", settings, recordingLog());
    // Each request fails after the hedge went out, so every attempt is hedged.
    const { sent, send } = failingSend(50);
    const result = await guard.call(UsersService.method.getUser, send, new CallBudget(2000, 0), signal);
    expect(result.ok).toBe(false);
    expect(result.timing.attempts).toBe(4);
    expect(result.timing.hedges).toBe(4);
    expect(sent).toHaveLength(8);
  });

  it("counts its retries and hedges, and reports its breaker's state, in the process's metrics", async () => {
    // A name of its own, apart from the other guards this file makes in the same registry.
    const guard = new GuardedDependency("metered", { ...settings, breakerFailures: 1 }, recordingLog());
    const { send } = failingSend(50);
    const result = await guard.call(UsersService.method.getUser, send, new CallBudget(2000, 0), signal);
    expect(result.timing).toMatchObject({ attempts: 4, hedges: 4 });
    const count = async (counter: typeof retries) =>
      (await counter.get()).values.find((value) => value.labels.dependency === "metered")?.value;
    expect(await count(retries)).toBe(3);
    expect(await count(hedges)).toBe(4);
    const breaker = await metricsRegistry.getSingleMetricAsString("shopmesh_circuit_breaker_state");
    expect(breaker).toContain('shopmesh_circuit_breaker_state{dependency="metered",state="open"} 1');
    expect(breaker).toContain('shopmesh_circuit_breaker_state{dependency="metered",state="closed"} 0');
  });

  it("neither retries nor hedges a method with no declared idempotency", async () => {
    expect(UsersService.method.signUp.idempotency).toBe(0);
    const guard = new GuardedDependency("users", settings, recordingLog());
    const { sent, send } = failingSend(30);
    const result = await guard.call(UsersService.method.signUp, send, new CallBudget(1000, 0), signal);
    expect(result).toMatchObject({
      ok: false,
      refused: false,
      timing: { attempts: 1, hedges: 0, code: "UNAVAILABLE" },
    });
    expect(sent).toHaveLength(1);
  });

  it("stops retrying when the caller goes away", async () => {
    const guard = new GuardedDependency(
      "users",
      { ...settings, hedgeDelayMs: undefined, retryBaseDelayMs: 100 },
      recordingLog(),
    );
    const caller = new AbortController();
    const { sent, send } = failingSend(1);
    setTimeout(() => caller.abort(new ConnectError("gone", Code.Canceled)), 30);
    const started = performance.now();
    const result = await guard.call(UsersService.method.getUser, send, new CallBudget(1000, 0), caller.signal);
    expect(performance.now() - started).toBeLessThan(200);
    expect(result.ok).toBe(false);
    expect(sent.length).toBeLessThan(4);
  });
});
