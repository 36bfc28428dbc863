// Each service's Prometheus endpoint: where it listens (METRICS_PORT,
// METRICS_HOST, validated up front), and what a scrape of a real service
// process shows after calls that succeeded and failed.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { ConfigError, defaultMetricsPort, readMetricsConfig } from "@shopmesh/chassis";
import { spawnService, type ServiceProcess } from "@shopmesh/cli";
import { EchoService } from "../../../gen/shopmesh/echo/v1/echo_pb.js";
import { failure } from "../../../test/support/failure.js";
import { rawUnaryCall } from "../../../test/support/raw-grpc-call.js";

const echoMain = fileURLToPath(new URL("./support/echo-main.ts", import.meta.url));

describe("readMetricsConfig", () => {
  it("puts the listener 2000 above the service's port, on loopback, a free port for port 0", () => {
    expect(readMetricsConfig(50051, {})).toEqual({ host: "127.0.0.1", port: 52051 });
    expect(readMetricsConfig(50054, {})).toEqual({ host: "127.0.0.1", port: 52054 });
    expect(readMetricsConfig(0, {})).toEqual({ host: "127.0.0.1", port: 0 });
    expect(defaultMetricsPort(64_000)).toBe(62_000);
  });

  it("takes METRICS_PORT and METRICS_HOST, and METRICS_PORT=off turns metrics off", () => {
    expect(readMetricsConfig(50051, { METRICS_PORT: "9464", METRICS_HOST: "0.0.0.0" })).toEqual({
      host: "0.0.0.0",
      port: 9464,
    });
    expect(readMetricsConfig(50051, { METRICS_PORT: "0" })).toEqual({ host: "127.0.0.1", port: 0 });
    expect(readMetricsConfig(50051, { METRICS_PORT: "off" })).toBeUndefined();
    expect(readMetricsConfig(50051, { METRICS_PORT: "OFF" })).toBeUndefined();
  });

  it.each(["nine", "-1", "70000", "1.5"])("refuses METRICS_PORT=%s with an error naming the variable", (value) => {
    let error: unknown;
    try {
      readMetricsConfig(50051, { METRICS_PORT: value });
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe("METRICS_PORT");
    expect((error as ConfigError).message).toContain(value);
  });
});

describe("a service process with a bad METRICS_PORT", () => {
  it("exits with code 2 before serving and names the variable", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", echoMain], {
      env: { ...process.env, TLS: "off", PORT: "0", METRICS_PORT: "sixty" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    let stdout = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    try {
      const [code] = (await once(child, "exit")) as [number | null];
      expect(code).toBe(2);
      expect(stderr).toContain('METRICS_PORT="sixty"');
      expect(stdout).not.toContain('"ready"');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });
});

/** One sample's value from Prometheus' text format, or undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const body = line.slice(name.length + 1, line.lastIndexOf("}"));
    if (Object.entries(labels).every(([key, value]) => body.includes(`${key}="${value}"`)))
      return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

describe("a service's /metrics", () => {
  let service: ServiceProcess;
  let transport: GrpcTransport;
  beforeAll(async () => {
    service = await spawnService({ entry: echoMain, env: { TLS: "off", METRICS_PORT: "0" } });
    transport = createTransport({ target: service.address });
  });
  afterAll(async () => {
    transport?.close();
    await service?.stop();
  });

  it("is reported in the ready line and serves call durations by method and status code", async () => {
    expect(service.metricsPort).toBeGreaterThan(0);
    expect(service.metricsPort).not.toBe(service.port);
    const ready = service.logs.find((entry) => entry.msg === "ready");
    expect(ready?.metricsPort).toBe(service.metricsPort);

    const echo = createClient(EchoService, transport);
    for (let i = 0; i < 3; i++) await echo.echo({ message: "hi" });
    await failure(echo.echo({ message: "no" }, { headers: { "x-fail-code": "5" } }));

    const response = await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/plain");
    const text = await response.text();
    const echoCalls = { rpc_service: "shopmesh.echo.v1.EchoService", rpc_method: "Echo" };
    expect(sample(text, "rpc_server_duration_seconds_count", { ...echoCalls, rpc_grpc_status_code: "0" })).toBe(3);
    expect(sample(text, "rpc_server_duration_seconds_count", { ...echoCalls, rpc_grpc_status_code: "5" })).toBe(1);
    expect(
      sample(text, "rpc_server_duration_seconds_bucket", { ...echoCalls, rpc_grpc_status_code: "0", le: "+Inf" }),
    ).toBe(3);
    // prom-client's process metrics, event loop delay among them.
    expect(text).toMatch(/^nodejs_eventloop_lag_p99_seconds \d/m);
    expect(text).toMatch(/^process_cpu_seconds_total \d/m);
    expect(text).toContain('shopmesh_admission_calls{queue="running"}');
  });

  it("times the calls the HTTP port (Connect protocol) answers with the gRPC port's", async () => {
    expect(service.httpPort).toBeGreaterThan(0);
    const ok = { rpc_service: "shopmesh.echo.v1.EchoService", rpc_method: "Echo", rpc_grpc_status_code: "0" };
    const count = async () =>
      sample(
        await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text(),
        "rpc_server_duration_seconds_count",
        ok,
      ) ?? 0;
    const before = await count();
    const response = await fetch(`http://127.0.0.1:${service.httpPort}/shopmesh.echo.v1.EchoService/Echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ message: "over http" }),
    });
    expect(await response.json()).toEqual({ message: "over http" });
    expect(await count()).toBe(before + 1);
  });

  it("counts a request whose bytes or JSON do not decode as refused INVALID_ARGUMENT, on either port", async () => {
    const invalid = { rpc_service: "shopmesh.echo.v1.EchoService", rpc_method: "Echo", rpc_grpc_status_code: "3" };
    const counts = async () => {
      const text = await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text();
      return [
        sample(text, "shopmesh_calls_refused_total", invalid) ?? 0,
        sample(text, "rpc_server_duration_seconds_count", invalid) ?? 0,
      ];
    };
    // Field 1 (message, a string) announced as 5 bytes long, with one sent.
    const undecodable = Uint8Array.of(0x0a, 0x05, 0x78);
    const [refused, timed] = await counts();
    const overGrpc = await rawUnaryCall(service.address, "/shopmesh.echo.v1.EchoService/Echo", undecodable, {
      timeoutMs: 5_000,
    });
    expect(overGrpc.code).toBe(Code.InvalidArgument);
    expect(await counts()).toEqual([refused! + 1, timed! + 1]);
    const overHttp = await fetch(`http://127.0.0.1:${service.httpPort}/shopmesh.echo.v1.EchoService/Echo`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: undecodable,
    });
    expect(overHttp.status).toBe(400);
    expect(((await overHttp.json()) as { code: string }).code).toBe("invalid_argument");
    expect(await counts()).toEqual([refused! + 2, timed! + 2]);
    const misspelt = await fetch(`http://127.0.0.1:${service.httpPort}/shopmesh.echo.v1.EchoService/Echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"mesage":"x"}',
    });
    expect(misspelt.status).toBe(400);
    expect(((await misspelt.json()) as { message: string }).message).toMatch(/mesage/);
    expect(await counts()).toEqual([refused! + 3, timed! + 3]);
    // A body over MAX_REQUEST_BYTES is not a request that does not decode, nor overload: not counted.
    const overLimit = await fetch(`http://127.0.0.1:${service.httpPort}/shopmesh.echo.v1.EchoService/Echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ message: "x".repeat(1_100_000) }),
    });
    expect(overLimit.status).toBe(429);
    await overLimit.body?.cancel();
    const text = await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text();
    expect(sample(text, "shopmesh_calls_refused_total", { ...invalid, rpc_grpc_status_code: "8" })).toBeUndefined();
    expect(await counts()).toEqual([refused! + 3, timed! + 3]);
  });

  it("serves only the families named with ?name=, leaving out names it does not have", async () => {
    const query = "name=rpc_server_duration_seconds&name=process_cpu_seconds_total&name=no_such_metric";
    const response = await fetch(`http://127.0.0.1:${service.metricsPort}/metrics?${query}`);
    expect(response.status).toBe(200);
    const families = [...(await response.text()).matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]);
    expect(families).toEqual(["rpc_server_duration_seconds", "process_cpu_seconds_total"]);
    for (const name of ["no_such_metric", "__proto__", "constructor", "toString"]) {
      const none = await fetch(`http://127.0.0.1:${service.metricsPort}/metrics?name=${name}`);
      expect([name, none.status, await none.text()]).toEqual([name, 200, ""]);
    }
  });

  it("answers 404 elsewhere", async () => {
    const response = await fetch(`http://127.0.0.1:${service.metricsPort}/`);
    expect(response.status).toBe(404);
    await response.text();
  });
});

describe("a service refusing calls for overload", () => {
  it("counts the refused calls and times them with the rest", async () => {
    const service = await spawnService({
      entry: echoMain,
      env: { TLS: "off", METRICS_PORT: "0", MAX_CALLS_IN_FLIGHT: "1", MAX_CALLS_QUEUED: "0" },
    });
    const transport = createTransport({ target: service.address });
    try {
      const echo = createClient(EchoService, transport);
      const slow = echo.echo({ message: "slow" }, { headers: { "x-delay-ms": "500" } });
      // The slow call holds the one slot once the handler has seen it.
      const refused = await failure(echo.echo({ message: "refused" }, { headers: { "x-delay-ms": "1" } }));
      await slow;
      expect(refused.code).toBe(Code.ResourceExhausted);
      const text = await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text();
      const labels = { rpc_service: "shopmesh.echo.v1.EchoService", rpc_method: "Echo", rpc_grpc_status_code: "8" };
      expect(sample(text, "shopmesh_calls_refused_total", labels)).toBe(1);
      expect(sample(text, "rpc_server_duration_seconds_count", labels)).toBe(1);
      expect(sample(text, "rpc_server_duration_seconds_count", { ...labels, rpc_grpc_status_code: "0" })).toBe(1);
    } finally {
      transport.close();
      await service.stop();
    }
  });
});

describe("METRICS_PORT=off", () => {
  it("starts no metrics listener and reports none", async () => {
    const service = await spawnService({ entry: echoMain, env: { TLS: "off", METRICS_PORT: "off" } });
    try {
      expect(service.metricsPort).toBeUndefined();
      expect(service.logs.find((entry) => entry.msg === "ready")).not.toHaveProperty("metricsPort");
    } finally {
      await service.stop();
    }
  });
});
