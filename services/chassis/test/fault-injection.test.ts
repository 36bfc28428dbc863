import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { FaultInjectionService } from "@shopmesh/sdk/faults/v1";
import { FaultRegistry, parseFaultsEnv, toFaultRule } from "@shopmesh/chassis";
import { spawnService, type ServiceProcess } from "@shopmesh/cli";
import { EchoService } from "../../../gen/shopmesh/echo/v1/echo_pb.js";
import { failure } from "../../../test/support/failure.js";
import { createEchoService } from "./support/echo-service.js";
import { refusedStart } from "../../../test/support/refused-start.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const echoMain = join(root, "services/chassis/test/support/echo-main.ts");
const shopmesh = join(root, "node_modules/.bin/shopmesh");

function rule(fault: Partial<Parameters<typeof toFaultRule>[0]>) {
  return toFaultRule({
    $typeName: "shopmesh.faults.v1.Fault",
    method: "*",
    slowProbability: 0,
    errorRate: 0,
    errorCode: "",
    hang: false,
    ...fault,
  });
}

/** The echo service in memory, behind a registry's interceptor. */
function echoWith(registry: FaultRegistry) {
  const transport = createRouterTransport(({ service }) => service(EchoService, createEchoService()), {
    router: { interceptors: [registry.interceptor] },
  });
  return createClient(EchoService, transport);
}

describe("FaultRegistry", () => {
  it("adds a fixed latency to every call of the chosen method only", async () => {
    const registry = new FaultRegistry(true, [rule({ method: "Echo", latency: durationFromMs(150) })]);
    const client = echoWith(registry);
    let started = performance.now();
    await client.echo({ message: "slow" });
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    started = performance.now();
    for await (const _ of client.echoStream({ message: "fast", count: 1 })) void _;
    expect(performance.now() - started).toBeLessThan(140);
  });

  it("makes a slow tail: only the fraction of calls the random draw picks is delayed", async () => {
    const draws = [0.05, 0.5, 0.95, 0.09];
    const registry = new FaultRegistry(
      true,
      [rule({ latency: durationFromMs(120), slowProbability: 0.1 })],
      () => draws.shift()!,
    );
    const client = echoWith(registry);
    const slow: boolean[] = [];
    for (let i = 0; i < 4; i++) {
      const started = performance.now();
      await client.echo({ message: "x" });
      slow.push(performance.now() - started >= 110);
    }
    expect(slow).toEqual([true, false, false, true]);
  });

  it("fails the chosen fraction of calls with the chosen code", async () => {
    const draws = [0.1, 0.3, 0.19];
    const registry = new FaultRegistry(
      true,
      [rule({ errorRate: 0.2, errorCode: "RESOURCE_EXHAUSTED" })],
      () => draws.shift()!,
    );
    const client = echoWith(registry);
    expect((await failure(client.echo({ message: "a" }))).code).toBe(Code.ResourceExhausted);
    await expect(client.echo({ message: "b" })).resolves.toBeTruthy();
    expect((await failure(client.echo({ message: "c" }))).code).toBe(Code.ResourceExhausted);
  });

  it("hangs until the caller's deadline", async () => {
    const client = echoWith(new FaultRegistry(true, [rule({ hang: true })]));
    const started = performance.now();
    const error = await failure(client.echo({ message: "x" }, { timeoutMs: 200 }));
    expect(error.code).toBe(Code.DeadlineExceeded);
    expect(performance.now() - started).toBeGreaterThanOrEqual(180);
  });

  it("prefers a method's own fault over the one for every method, and clears", async () => {
    const registry = new FaultRegistry(true, [
      rule({ errorRate: 1, errorCode: "INTERNAL" }),
      rule({ method: "shopmesh.echo.v1.EchoService/Echo", errorRate: 1, errorCode: "ABORTED" }),
    ]);
    expect(registry.ruleFor("Echo")!.errorCode).toBe(Code.Aborted);
    expect(registry.ruleFor("EchoStream")!.errorCode).toBe(Code.Internal);
    registry.clear("Echo");
    expect(registry.ruleFor("Echo")!.errorCode).toBe(Code.Internal);
    registry.clear();
    expect(registry.list()).toEqual([]);
  });

  it("takes faults only for the methods the service hosts, once it knows them", () => {
    const registry = new FaultRegistry(true, [rule({ method: "Nope", hang: true })]);
    expect(() => registry.restrictTo(["Echo", "EchoStream"])).toThrow(/method: "Nope" is not a method/);
    const hosted = new FaultRegistry(true);
    hosted.restrictTo(["Echo", "EchoStream"]);
    expect(() => hosted.set(rule({ method: "echo", hang: true }))).toThrow(/did you mean "Echo"/);
    hosted.set(rule({ method: "pkg.Service/EchoStream", hang: true }));
    hosted.set(rule({ method: "*", errorRate: 1 }));
    expect(hosted.list().map((r) => r.method)).toEqual(["EchoStream", "*"]);
  });

  it("refuses bad faults with INVALID_ARGUMENT naming the field", () => {
    expect(() => rule({ errorRate: 1.5 })).toThrow(/error_rate/);
    expect(() => rule({ errorCode: "TEAPOT" })).toThrow(/error_code/);
    expect(() => rule({ errorCode: "OK" })).toThrow(/error_code/);
    expect(() => rule({})).toThrow(/\] fault: injects nothing/);
    expect(() => rule({ slowProbability: 0.5, errorCode: "INTERNAL" })).toThrow(/\] fault: injects nothing/);
    expect(() => parseFaultsEnv('[{"method":"Echo"}]')).toThrow(/FAULTS\[0\]\.fault: injects nothing/);
    expect(() => parseFaultsEnv('[{"latency":"soon"}]')).toThrow(/FAULTS\[0\]\.latency/);
    expect(() => parseFaultsEnv("{}")).toThrow(/array/);
    expect(() => rule({ latency: { $typeName: "google.protobuf.Duration", seconds: 0n, nanos: 2e9 } })).toThrow(
      /latency: not a valid duration/,
    );
    expect(() => rule({ latency: { $typeName: "google.protobuf.Duration", seconds: 1n, nanos: -5 } })).toThrow(
      /latency: not a valid duration/,
    );
    expect(parseFaultsEnv('[{"method":"Echo","latency":"250ms","slowProbability":0.5}]')[0]).toMatchObject({
      method: "Echo",
      latencyMs: 250,
      slowProbability: 0.5,
    });
  });
});

describe("fault injection in a service process", () => {
  let enabled: ServiceProcess;
  let disabled: ServiceProcess;
  const transports: GrpcTransport[] = [];
  const clientFor = (address: string) => {
    const transport = createTransport({ target: address });
    transports.push(transport);
    return transport;
  };
  const chaosCli = (...args: string[]) =>
    spawnSync(shopmesh, ["chaos", ...args], { encoding: "utf8", timeout: 20_000 });

  beforeAll(async () => {
    // Each assigned as it starts, so that afterAll stops one that started when the other did not.
    await Promise.all([
      spawnService({
        entry: echoMain,
        env: { TLS: "off", FAULT_INJECTION: "on", DEVELOPMENT_MODE: "on", HOST: "0.0.0.0" },
      }).then((service) => (enabled = service)),
      spawnService({ entry: echoMain, env: { TLS: "off" } }).then((service) => (disabled = service)),
    ]);
  });
  afterAll(async () => {
    for (const transport of transports) transport.close();
    await Promise.all([enabled?.stop(), disabled?.stop()]);
  });

  it("changes faults at run time through `shopmesh chaos`", async () => {
    const echo = createClient(EchoService, clientFor(enabled.address));
    const admin = `--admin=127.0.0.1:${enabled.adminPort}`;

    const set = chaosCli("users", admin, "--method", "Echo", "--latency", "300ms");
    expect(set.status, set.stderr).toBe(0);
    expect(set.stdout).toContain("Echo: +300ms");
    let started = performance.now();
    await echo.echo({ message: "x" });
    expect(performance.now() - started).toBeGreaterThanOrEqual(280);

    const faults = createClient(FaultInjectionService, clientFor(`127.0.0.1:${enabled.adminPort}`));
    const misnamed = await failure(faults.setFault({ fault: { method: "echo", hang: true } }));
    expect([misnamed.code, misnamed.rawMessage]).toEqual([
      Code.InvalidArgument,
      'method: "echo" is not a method of this service (did you mean "Echo"?); one of Echo, EchoStream, or "*" for every method',
    ]);
    expect((await faults.listFaults({})).faults.map((fault) => fault.method)).toEqual(["Echo"]);

    expect(chaosCli("users", admin, "--error-rate", "1", "--code", "UNAVAILABLE").status).toBe(0);
    const error = await failure(echo.echoStream({ message: "x", count: 1 })[Symbol.asyncIterator]().next());
    expect(error.code).toBe(Code.Unavailable);

    const list = chaosCli("users", admin, "--list");
    expect(list.stdout).toContain("every method: UNAVAILABLE on 100% of calls");
    expect(chaosCli("users", admin, "--clear").stdout).toContain("no faults");
    // The latency would be added to every call; the fastest of three is below it even if one is held up.
    const took: number[] = [];
    for (let i = 0; i < 3; i++) {
      started = performance.now();
      await echo.echo({ message: "x" });
      took.push(performance.now() - started);
    }
    expect(Math.min(...took)).toBeLessThan(280);
  });

  it("refuses the admin RPC when fault injection is disabled: FAILED_PRECONDITION", async () => {
    const admin = createClient(FaultInjectionService, clientFor(`127.0.0.1:${disabled.adminPort}`));
    const error = await failure(admin.setFault({ fault: { method: "*", hang: true } }));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toContain("FAULT_INJECTION=on");
    const cli = chaosCli("users", `--admin=127.0.0.1:${disabled.adminPort}`, "--hang");
    expect(cli.status).toBe(1);
    expect(cli.stderr).toContain("fault injection is disabled");
  });

  it("binds the admin listener to 127.0.0.1 only, even when the service listens on every address", async () => {
    // 127.0.0.2 is loopback too, but only a socket bound to 0.0.0.0 answers there.
    const health = createClient(EchoService, clientFor(`127.0.0.2:${enabled.port}`));
    await expect(health.echo({ message: "reachable" }, { timeoutMs: 5000 })).resolves.toMatchObject({
      message: "reachable",
    });
    const admin = createClient(FaultInjectionService, clientFor(`127.0.0.2:${enabled.adminPort}`));
    const error = await failure(admin.listFaults({}, { timeoutMs: 5000 }));
    expect(error.code).toBe(Code.Unavailable);
  });

  it("takes faults from FAULTS at start, and refuses FAULTS without FAULT_INJECTION", async () => {
    const withFaults = await spawnService({
      entry: echoMain,
      env: {
        TLS: "off",
        FAULT_INJECTION: "on",
        DEVELOPMENT_MODE: "on",
        FAULTS: '[{"method":"Echo","errorRate":1,"errorCode":"DATA_LOSS"}]',
      },
    });
    try {
      const error = await failure(createClient(EchoService, clientFor(withFaults.address)).echo({ message: "x" }));
      expect(error.code).toBe(Code.DataLoss);
    } finally {
      await withFaults.stop();
    }
    expect(String(await refusedStart({ entry: echoMain, env: { TLS: "off", FAULTS: '[{"hang":true}]' } }))).toMatch(
      /exited with 2[\s\S]*FAULTS/,
    );
    const unknownMethod = await refusedStart({
      entry: echoMain,
      env: { TLS: "off", FAULT_INJECTION: "on", DEVELOPMENT_MODE: "on", FAULTS: '[{"method":"Nope","hang":true}]' },
    });
    expect(String(unknownMethod)).toMatch(/exited with 2[\s\S]*FAULTS[\s\S]*"Nope" is not a method/);
  });

  it("refuses a DEVELOPMENT_MODE that is neither on nor off at start, with or without fault injection", async () => {
    for (const faultInjection of ["on", "off"]) {
      const outcome = await refusedStart({
        entry: echoMain,
        env: { TLS: "off", FAULT_INJECTION: faultInjection, DEVELOPMENT_MODE: "maybe" },
      });
      expect(String(outcome)).toMatch(/exited with 2[\s\S]*DEVELOPMENT_MODE="maybe" is not valid/);
    }
  });
});
