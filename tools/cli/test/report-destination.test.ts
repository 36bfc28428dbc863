// Where experiment and bench runs write their reports and which ports they
// take by default. A quick run is a smoke test and must not overwrite the
// measured reports committed in reports/.
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { defaultAdminPort } from "@shopmesh/chassis";
import { readBenchSettings } from "../src/bench/bench-settings.js";
import { readExperimentSettings } from "../src/experiment/experiment-settings.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const ephemeralStart = 32768;

describe("shopmesh experiment", () => {
  it("writes a quick run to data/experiment-quick, a full run to reports/, and --out wherever it says", () => {
    expect(readExperimentSettings(["--quick"], {})?.outDir).toBe(join(root, "data", "experiment-quick"));
    expect(readExperimentSettings([], {})?.outDir).toBe(join(root, "reports"));
    expect(readExperimentSettings(["--quick", "--out", "somewhere"], {})?.outDir).toBe(resolve("somewhere"));
  });

  it("takes ports below the ephemeral range by default", () => {
    const { portBase } = readExperimentSettings([], {})!;
    expect(portBase + 3).toBeLessThan(ephemeralStart);
    expect(readExperimentSettings(["--port-base", "20000"], {})?.portBase).toBe(20000);
    expect(() => readExperimentSettings(["--port-base", "65534"], {})).toThrow(
      /--port-base: "65534" is not a port from 1024 to 65532/,
    );
  });
});

describe("shopmesh bench", () => {
  it("writes a quick run to data/bench-quick, a full run to reports/, and --out wherever it says", () => {
    expect(readBenchSettings(["--quick"]).outDir).toBe(join(root, "data", "bench-quick"));
    expect(readBenchSettings([]).outDir).toBe(join(root, "reports"));
    expect(readBenchSettings(["--quick", "--out", "somewhere"]).outDir).toBe(resolve("somewhere"));
  });

  it("takes ports below the ephemeral range by default", () => {
    expect(readBenchSettings([]).portBase + 4).toBeLessThan(ephemeralStart);
  });
});

describe("npm start", () => {
  it("puts the admin listeners of the well-known ports below the ephemeral range", () => {
    for (const port of [50051, 50052, 50053, 50054]) expect(defaultAdminPort(port)).toBeLessThan(ephemeralStart);
  });
});
