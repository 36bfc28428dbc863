// Structured logs: at LOG_LEVEL=debug a service process writes one JSON line
// per call with the method, the status code name and the duration; and a
// process whose log reader has gone still stops on SIGTERM.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { setTimeout } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Code, createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { Health } from "@shopmesh/sdk/health/v1";
import { spawnService, type ServiceProcess } from "@shopmesh/cli";
import { EchoService } from "../../../gen/shopmesh/echo/v1/echo_pb.js";
import { readAll, settle } from "./support/call-outcome.js";

const echoMain = fileURLToPath(new URL("./support/echo-main.ts", import.meta.url));

describe("call logs at LOG_LEVEL=debug", () => {
  let service: ServiceProcess;
  let transport: GrpcTransport;

  beforeAll(async () => {
    service = await spawnService({ entry: echoMain, env: { TLS: "off", LOG_LEVEL: "debug" } });
    transport = createTransport({ target: service.address });
  });

  afterAll(async () => {
    transport?.close();
    if (service) expect(await service.stop()).toBe(0);
  });

  const callLines = () => service.logs.filter((entry) => entry.msg === "call");

  it("writes the ready line with the port", () => {
    const ready = service.logs.find((entry) => entry.msg === "ready");
    expect(ready).toMatchObject({
      level: "info",
      service: "echo",
      port: service.port,
      services: [EchoService.typeName],
    });
    expect(typeof ready?.time).toBe("string");
  });

  it("writes one JSON line per call with method, code and durationMs", async () => {
    const echo = createClient(EchoService, transport);
    const health = createClient(Health, transport);
    const before = callLines().length;

    await echo.echo({ message: "logged" }, { headers: { "x-delay-ms": "30" } });
    await settle(echo.echo({ message: "fails" }, { headers: { "x-fail-code": String(Code.NotFound) } }));
    await readAll(echo.echoStream({ message: "streamed", count: 3 }));
    await settle(readAll(echo.echoStream({ message: "stream fails", count: 3 }, { headers: { "x-fail-after": "1" } })));
    await health.check({});

    await vi.waitFor(() => expect(callLines().length - before).toBe(5), { timeout: 5_000 });
    const lines = callLines().slice(before);
    for (const line of lines) {
      expect(line).toMatchObject({ level: "debug", service: "echo", msg: "call" });
      expect(typeof line.durationMs).toBe("number");
      expect(line.durationMs as number).toBeGreaterThanOrEqual(0);
      expect(line.durationMs as number).toBeLessThan(5_000);
    }
    expect(lines.map((line) => [line.method, line.code])).toEqual([
      ["/shopmesh.echo.v1.EchoService/Echo", "OK"],
      ["/shopmesh.echo.v1.EchoService/Echo", "NOT_FOUND"],
      ["/shopmesh.echo.v1.EchoService/EchoStream", "OK"],
      ["/shopmesh.echo.v1.EchoService/EchoStream", "ABORTED"],
      ["/grpc.health.v1.Health/Check", "OK"],
    ]);
    // The call that waited 30 ms says so.
    expect(lines[0]!.durationMs as number).toBeGreaterThanOrEqual(25);
  });

  it("logs a handler's plain Error for the operator, while the client sees only INTERNAL", async () => {
    const echo = createClient(EchoService, transport);
    const outcome = await settle(echo.echo({ message: "throws" }, { headers: { "x-throw": "1" } }));
    expect((outcome.error as { code?: Code }).code).toBe(Code.Internal);
    await vi.waitFor(() => expect(service.logs.some((entry) => entry.msg === "handler failed")).toBe(true), {
      timeout: 5_000,
    });
    const failure = service.logs.find((entry) => entry.msg === "handler failed")!;
    expect(failure).toMatchObject({ level: "error", method: "/shopmesh.echo.v1.EchoService/Echo" });
    expect(JSON.stringify(failure.err)).toContain("hunter2");
    await vi.waitFor(() =>
      expect(
        callLines().some((line) => line.method === "/shopmesh.echo.v1.EchoService/Echo" && line.code === "INTERNAL"),
      ).toBe(true),
    );
  });
});

describe("a service whose log reader has gone", () => {
  it("still stops on SIGTERM (its supervisor died, so writing a line fails with EPIPE)", {
    timeout: 30_000,
  }, async () => {
    const child = spawn(process.execPath, ["--import", "tsx", echoMain], {
      env: { ...process.env, TLS: "off", PORT: "0", METRICS_PORT: "off" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      let output = "";
      child.stdout.setEncoding("utf8");
      for await (const chunk of child.stdout) {
        output += chunk;
        if (output.includes('"msg":"ready"')) break;
      }
      expect(output).toContain('"msg":"ready"');
      child.stdout.destroy();
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      // Bounded, so that a process that hangs fails the test and is still killed below.
      const outcome = await Promise.race([exited.then(([code]) => code), setTimeout(20_000, "still running")]);
      expect(outcome).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });
});
