import { describe, expect, it } from "vitest";
import { Code, ConnectError, retryPushbackMs } from "../src/index.js";

const refused = (pushback?: string) =>
  new ConnectError(
    "server overloaded",
    Code.ResourceExhausted,
    pushback === undefined ? undefined : { "grpc-retry-pushback-ms": pushback },
  );

describe("retryPushbackMs", () => {
  it("reads the pushback a server sent with a refusal", () => {
    expect(retryPushbackMs(refused("250"))).toBe(250);
    expect(retryPushbackMs(refused("0"))).toBe(0);
  });

  it("is undefined when there is none, or it is not a whole number of ms (gRPC reads that as: do not retry)", () => {
    expect(retryPushbackMs(refused())).toBeUndefined();
    for (const value of ["-1", "1.5", "soon", "", "9999999999"])
      expect(retryPushbackMs(refused(value))).toBeUndefined();
    expect(retryPushbackMs(new Error("not a call's error"))).toBeUndefined();
  });
});
