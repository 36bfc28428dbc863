import { describe, expect, it } from "vitest";
import { ViewLoad } from "../src/server/view-load.js";

describe("ViewLoad", () => {
  it("never sends faster than its fastest rate, however slow (or unreadable) a rate it is given", async () => {
    // No user-orders: each view due is recorded at once as failed, so the samples count the timer's ticks.
    const load = new ViewLoad({ target: () => undefined, tls: () => undefined });
    try {
      for (const rate of [1e-300, Number.NaN]) {
        load.set(rate, "token", "someone");
        await new Promise((resolve) => setTimeout(resolve, 300));
        // A timer's delay past 2^31 - 1 ms, or NaN, fires every millisecond: some 300 views here.
        expect(load.state().samples.length, `at ${rate} a second`).toBeLessThanOrEqual(1);
        load.stop();
      }
    } finally {
      load.close();
    }
  });
});
