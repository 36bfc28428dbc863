// The bench's closed loop: a refusal that carries a retry pushback pauses its
// loop for that long; any other failure is sent again at once.
import { Code, ConnectError } from "@shopmesh/sdk";
import { describe, expect, it } from "vitest";
import { closedLoop } from "../src/bench/load-loop.js";

function refusal(pushbackMs?: number): ConnectError {
  const metadata = new Headers();
  if (pushbackMs !== undefined) metadata.set("grpc-retry-pushback-ms", String(pushbackMs));
  return new ConnectError("server overloaded", Code.ResourceExhausted, metadata);
}

describe("closedLoop", () => {
  it("waits a refusal's pushback before its next call, and never past the end of the run", async () => {
    let calls = 0;
    const started = performance.now();
    const result = await closedLoop(
      async () => {
        calls++;
        throw refusal(150);
      },
      2,
      400,
    );
    // Two loops, each refused at 0, 150 and 300 ms, or later on a busy machine: at most three calls
    // apiece, where a loop that ignored the pushback would have made thousands. The last pause, cut
    // to the 100 ms left, must not end early either (a single timer of 99.7 ms usually does).
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(calls).toBeLessThanOrEqual(6);
    expect(result).toMatchObject({ calls: 0, errors: calls, firstError: "[resource_exhausted] server overloaded" });
    // The last pause is cut to what is left of the 400 ms.
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it("sends again at once after a failure without a pushback", async () => {
    let calls = 0;
    const result = await closedLoop(
      async () => {
        calls++;
        await new Promise((resolve) => setTimeout(resolve, 1));
        throw refusal();
      },
      1,
      100,
    );
    expect(calls).toBeGreaterThan(10);
    expect(result.errors).toBe(calls);
  });
});
