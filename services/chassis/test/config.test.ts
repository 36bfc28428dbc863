// Configuration from the environment: defaults, good values, and a clear
// ConfigError that names the variable for bad ones; and a service process that
// refuses a bad PORT with exit code 2.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ConfigError, envReader, parseDurationMs, readServerConfig } from "@shopmesh/chassis";

const echoMain = fileURLToPath(new URL("./support/echo-main.ts", import.meta.url));

/** Runs `fn` and returns the ConfigError it threw; fails the test otherwise. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError, but nothing was thrown");
}

describe("parseDurationMs", () => {
  it.each([
    ["250ms", 250],
    ["10s", 10_000],
    ["1.5s", 1_500],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["300", 300],
    ["0", 0],
    [" 5s ", 5_000],
  ])("reads %j as %i ms", (text, expected) => {
    expect(parseDurationMs(text)).toBe(expected);
  });

  it.each(["", "soon", "-5s", "5 s", "5sec", "1e3", "s", "10d", "1,5s"])("rejects %j", (text) => {
    expect(parseDurationMs(text)).toBeUndefined();
  });
});

describe("envReader", () => {
  it("returns the fallback for a missing or blank variable", () => {
    const read = envReader({ BLANK: "   " });
    expect(read.string("MISSING", "fallback")).toBe("fallback");
    expect(read.string("BLANK", "fallback")).toBe("fallback");
    expect(read.optionalString("MISSING")).toBeUndefined();
    expect(read.optionalString("BLANK")).toBeUndefined();
    expect(read.int("MISSING", 7)).toBe(7);
    expect(read.number("BLANK", 0.5)).toBe(0.5);
    expect(read.bool("MISSING", true)).toBe(true);
    expect(read.durationMs("MISSING", "2s")).toBe(2_000);
    expect(read.durationMs("MISSING", 42)).toBe(42);
    expect(read.oneOf("MISSING", ["a", "b"], "b")).toBe("b");
    expect(read.target("MISSING", "127.0.0.1:50051")).toBe("127.0.0.1:50051");
  });

  it("takes a target as host:port or with one of grpc-js's schemes", () => {
    for (const target of [
      "127.0.0.1:50051",
      "[::1]:50051",
      "users.internal:50051",
      "users:1",
      "localhost:65535",
      "dns:///users.internal:50051",
      "unix:///run/users.sock",
      "ipv4:10.0.0.1:50051,10.0.0.2:50051",
    ]) {
      expect(envReader({ USERS_TARGET: target }).target("USERS_TARGET", "x")).toBe(target);
    }
  });

  it("reads good values, trimmed", () => {
    const read = envReader({
      NAME: "  users ",
      COUNT: "12",
      NEGATIVE: "-3",
      RATIO: "0.25",
      FLAG_ON: "Yes",
      FLAG_OFF: "0",
      WAIT: "1.5s",
      MODE: "b",
    });
    expect(read.string("NAME", "x")).toBe("users");
    expect(read.optionalString("NAME")).toBe("users");
    expect(read.int("COUNT", 0, { min: 1, max: 12 })).toBe(12);
    expect(read.int("NEGATIVE", 0)).toBe(-3);
    expect(read.number("RATIO", 0, { min: 0, max: 1 })).toBe(0.25);
    expect(read.bool("FLAG_ON", false)).toBe(true);
    expect(read.bool("FLAG_OFF", true)).toBe(false);
    expect(read.durationMs("WAIT", 0)).toBe(1_500);
    expect(read.oneOf("MODE", ["a", "b"], "a")).toBe("b");
  });

  it.each<[string, string, string, () => unknown]>([
    ["int", "COUNT", "twelve", () => envReader({ COUNT: "twelve" }).int("COUNT", 0)],
    ["int (fraction)", "COUNT", "1.5", () => envReader({ COUNT: "1.5" }).int("COUNT", 0)],
    ["int (below min)", "COUNT", "0", () => envReader({ COUNT: "0" }).int("COUNT", 5, { min: 1 })],
    ["int (above max)", "COUNT", "13", () => envReader({ COUNT: "13" }).int("COUNT", 5, { max: 12 })],
    ["number", "RATIO", "half", () => envReader({ RATIO: "half" }).number("RATIO", 0)],
    ["number (infinite)", "RATIO", "Infinity", () => envReader({ RATIO: "Infinity" }).number("RATIO", 0)],
    ["number (range)", "RATIO", "1.5", () => envReader({ RATIO: "1.5" }).number("RATIO", 0, { min: 0, max: 1 })],
    ["bool", "FLAG", "maybe", () => envReader({ FLAG: "maybe" }).bool("FLAG", false)],
    ["duration", "WAIT", "soon", () => envReader({ WAIT: "soon" }).durationMs("WAIT", 0)],
    ["oneOf", "MODE", "c", () => envReader({ MODE: "c" }).oneOf("MODE", ["a", "b"], "a")],
    ...[
      ":",
      "users",
      "users:",
      ":50051",
      "users:0",
      "users:65536",
      "users:50051/x",
      "http://users:50051",
      "a b:1",
      "[1.2.3.4]:50051",
      "[::1:50051",
    ].map((value): [string, string, string, () => unknown] => [
      `target (${value})`,
      "USERS_TARGET",
      value,
      () => envReader({ USERS_TARGET: value }).target("USERS_TARGET", "x"),
    ]),
  ])("throws a ConfigError naming the variable for a bad %s", (_kind, variable, value, read) => {
    const error = configError(read);
    expect(error.variable).toBe(variable);
    expect(error.value).toBe(value);
    expect(error.name).toBe("ConfigError");
    expect(error.message).toContain(variable);
    expect(error.message).toContain(JSON.stringify(value));
    expect(error.message).toMatch(/expected .+/);
  });

  it("says what was expected", () => {
    expect(configError(() => envReader({ MODE: "c" }).oneOf("MODE", ["a", "b"], "a")).message).toContain("one of a, b");
    expect(configError(() => envReader({ N: "9" }).int("N", 0, { min: 1, max: 5 })).message).toContain("from 1 to 5");
    expect(configError(() => envReader({ WAIT: "x" }).durationMs("WAIT", 0)).message).toContain('"250ms"');
  });

  it("reads process.env when given no environment", () => {
    const name = `SHOPMESH_CONFIG_TEST_${process.pid}`;
    process.env[name] = "31";
    try {
      expect(envReader().int(name, 0)).toBe(31);
    } finally {
      delete process.env[name];
    }
  });
});

describe("readServerConfig", () => {
  it("has defaults for everything", () => {
    expect(readServerConfig(50051, {})).toEqual({
      host: "127.0.0.1",
      port: 50051,
      logLevel: "info",
      shutdownDelayMs: 0,
      shutdownGraceMs: 10_000,
      maxRequestBytes: 1024 * 1024,
      faultInjection: false,
      grpcServer: "grpc-js",
      adminPort: 30051,
      admission: { maxCallsInFlight: 64, maxCallsQueued: 64, maxQueueWaitMs: 250 },
      connections: {
        handshakeTimeoutMs: 10_000,
        idleTimeoutMs: 300_000,
        maxAgeMs: 1_800_000,
        maxAgeGraceMs: 300_000,
        maxConcurrentStreams: 256,
        maxConnections: 4096,
      },
    });
  });

  it("puts the admin listener below the ephemeral port range by default", () => {
    expect(readServerConfig(50054, {}).adminPort).toBe(30054);
    expect(readServerConfig(50051, { PORT: "21024" }).adminPort).toBe(1024);
    expect(readServerConfig(50051, { PORT: "20000" }).adminPort).toBe(30000);
    expect(readServerConfig(50051, { PORT: "1024" }).adminPort).toBe(11024);
  });

  it("puts the admin port on a free port too when PORT is 0", () => {
    expect(readServerConfig(50051, { PORT: "0" })).toMatchObject({ port: 0, adminPort: 0 });
  });

  it("reads every setting", () => {
    expect(
      readServerConfig(50051, {
        HOST: "0.0.0.0",
        PORT: "0",
        LOG_LEVEL: "debug",
        SHUTDOWN_DELAY: "600ms",
        SHUTDOWN_GRACE: "2s",
        MAX_REQUEST_BYTES: "4096",
        FAULT_INJECTION: "on",
        GRPC_SERVER: "connect-node",
        ADMIN_PORT: "7001",
        MAX_CALLS_IN_FLIGHT: "8",
        MAX_CALLS_QUEUED: "0",
        MAX_QUEUE_WAIT: "50ms",
        HANDSHAKE_TIMEOUT: "2s",
        CONNECTION_IDLE_TIMEOUT: "0",
        MAX_CONNECTION_AGE: "1h",
        MAX_CONNECTION_AGE_GRACE: "30s",
        MAX_CONCURRENT_STREAMS: "32",
        MAX_CONNECTIONS: "100",
      }),
    ).toEqual({
      host: "0.0.0.0",
      port: 0,
      logLevel: "debug",
      shutdownDelayMs: 600,
      shutdownGraceMs: 2_000,
      maxRequestBytes: 4096,
      faultInjection: true,
      grpcServer: "connect-node",
      adminPort: 7001,
      admission: { maxCallsInFlight: 8, maxCallsQueued: 0, maxQueueWaitMs: 50 },
      connections: {
        handshakeTimeoutMs: 2_000,
        idleTimeoutMs: 0,
        maxAgeMs: 3_600_000,
        maxAgeGraceMs: 30_000,
        maxConcurrentStreams: 32,
        maxConnections: 100,
      },
    });
  });

  it("takes a service's own admission defaults, which the environment still overrides", () => {
    expect(readServerConfig(50054, {}, { maxCallsInFlight: 16 }).admission).toEqual({
      maxCallsInFlight: 16,
      maxCallsQueued: 64,
      maxQueueWaitMs: 250,
    });
    expect(
      readServerConfig(50054, { MAX_CALLS_IN_FLIGHT: "32" }, { maxCallsInFlight: 16 }).admission.maxCallsInFlight,
    ).toBe(32);
  });

  it.each([
    ["PORT", "notaport"],
    ["PORT", "65536"],
    ["PORT", "-1"],
    ["LOG_LEVEL", "loud"],
    ["SHUTDOWN_DELAY", "soon"],
    ["SHUTDOWN_GRACE", "10 seconds"],
    ["MAX_REQUEST_BYTES", "10"],
    ["MAX_REQUEST_BYTES", "1MB"],
    ["FAULT_INJECTION", "sometimes"],
    ["GRPC_SERVER", "netty"],
    ["ADMIN_PORT", "admin"],
    ["MAX_CALLS_IN_FLIGHT", "-1"],
    ["MAX_CALLS_QUEUED", "many"],
    ["MAX_QUEUE_WAIT", "a while"],
    ["HANDSHAKE_TIMEOUT", "0"],
    // Longer than setTimeout's 2^31 - 1 ms, which Node fires after 1 ms.
    ["HANDSHAKE_TIMEOUT", "1000h"],
    ["SHUTDOWN_GRACE", "1000h"],
    ["MAX_QUEUE_WAIT", "1000h"],
    ["MAX_CONNECTION_AGE", "1000h"],
    ["CONNECTION_IDLE_TIMEOUT", "5 minutes"],
    ["MAX_CONNECTION_AGE", "forever"],
    ["MAX_CONNECTION_AGE_GRACE", "-1s"],
    ["MAX_CONCURRENT_STREAMS", "0"],
    ["MAX_CONNECTIONS", "0"],
  ])("rejects %s=%j with a ConfigError naming it", (variable, value) => {
    const error = configError(() => readServerConfig(50051, { [variable]: value }));
    expect(error.variable).toBe(variable);
    expect(error.value).toBe(value);
    expect(error.message.startsWith(`${variable}=`)).toBe(true);
  });
});

describe("a service process with a bad configuration", () => {
  async function start(env: Record<string, string>) {
    const child = spawn(process.execPath, ["--import", "tsx", echoMain], {
      env: { ...process.env, TLS: "off", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    let stdout = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    try {
      const [code] = (await once(child, "exit")) as [number | null];
      return { code, stderr, stdout };
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  }

  it("exits with code 2 and names the variable on stderr", async () => {
    const { code, stderr, stdout } = await start({ PORT: "notaport" });
    expect(code).toBe(2);
    expect(stderr).toContain("PORT");
    expect(stderr).toContain("notaport");
    expect(stdout).not.toContain('"ready"');
  });

  it("names the variable that gives a second listener a port another already has", async () => {
    const port = "41733";
    const { code, stderr, stdout } = await start({ PORT: port, METRICS_PORT: port, HTTP_PORT: "off" });
    expect(code).toBe(2);
    expect(stderr).toContain(
      `METRICS_PORT="${port}" is not valid: expected a port other than PORT's (${port}), or 0 for a free one`,
    );
    expect(stdout).not.toContain('"ready"');
  });
});
