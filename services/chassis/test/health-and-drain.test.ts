// grpc.health.v1 and the life cycle of a service process: it answers SERVING,
// turns NOT_SERVING when told to stop, lets in-flight calls finish, cancels
// what is still running after the grace period, and exits 0 either way.
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { Code, createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@shopmesh/sdk/health/v1";
import { spawnService, type ServiceProcess } from "@shopmesh/cli";
import { EchoService } from "../../../gen/shopmesh/echo/v1/echo_pb.js";
import { asConnectError, readAll, settle, signalled } from "./support/call-outcome.js";

const echoMain = fileURLToPath(new URL("./support/echo-main.ts", import.meta.url));

const processes: ServiceProcess[] = [];
const transports: GrpcTransport[] = [];

async function startEcho(env: Record<string, string> = {}) {
  const service = await spawnService({ entry: echoMain, env: { TLS: "off", ...env } });
  processes.push(service);
  const transport = createTransport({ target: service.address });
  transports.push(transport);
  return {
    service,
    health: createClient(Health, transport),
    echo: createClient(EchoService, transport),
  };
}

async function cleanUp() {
  for (const transport of transports.splice(0)) transport.close();
  await Promise.all(
    processes.splice(0).map(async (service) => {
      if (service.child.exitCode === null && service.child.signalCode === null) await service.stop("SIGKILL");
    }),
  );
}

describe("grpc.health.v1.Health", () => {
  let echo: Awaited<ReturnType<typeof startEcho>>;

  beforeAll(async () => {
    echo = await startEcho();
  });

  afterAll(cleanUp);

  it("answers SERVING for the server and for each hosted service", async () => {
    expect((await echo.health.check({})).status).toBe(ServingStatus.SERVING);
    expect((await echo.health.check({ service: "" })).status).toBe(ServingStatus.SERVING);
    expect((await echo.health.check({ service: EchoService.typeName })).status).toBe(ServingStatus.SERVING);
  });

  it("answers NOT_FOUND for a service it does not host", async () => {
    const outcome = await settle(echo.health.check({ service: "shopmesh.nothing.v1.NothingService" }));
    expect(asConnectError(outcome.error).code).toBe(Code.NotFound);
  });

  it("cuts a long status message short, so that the call and its connection go on", async () => {
    const name = `shopmesh.${"x".repeat(200_000)}.Service`;
    const outcome = await settle(echo.health.check({ service: name }, { timeoutMs: 5_000 }));
    const error = asConnectError(outcome.error);
    expect(error.code).toBe(Code.NotFound);
    expect(error.rawMessage).toMatch(/^unknown service "shopmesh\.x+… \(\d+ more characters\)$/);
    expect(error.rawMessage.length).toBeLessThan(1_100);
    expect((await echo.health.check({}, { timeoutMs: 5_000 })).status).toBe(ServingStatus.SERVING);
  });

  it("streams SERVICE_UNKNOWN from Watch for a service it does not host", async () => {
    const controller = new AbortController();
    const outcome = settle(
      readAll(
        echo.health.watch({ service: "shopmesh.nothing.v1.NothingService" }, { signal: controller.signal }),
        (response) => {
          expect(response.status).toBe(ServingStatus.SERVICE_UNKNOWN);
          controller.abort();
        },
      ),
    );
    expect(asConnectError((await outcome).error).code).toBe(Code.Canceled);
    expect(controller.signal.aborted).toBe(true);
  });
});

describe("draining on SIGTERM", () => {
  afterEach(cleanUp);

  it("turns NOT_SERVING during the shutdown delay, finishes in-flight calls and exits 0", async () => {
    const { service, health, echo } = await startEcho({ SHUTDOWN_DELAY: "600ms", SHUTDOWN_GRACE: "10s" });

    // Watch the server's status for the whole shutdown.
    const watched: ServingStatus[] = [];
    const serving = signalled();
    const notServing = signalled();
    const watching = settle(
      readAll(health.watch({ service: "" }), ({ status }) => {
        watched.push(status);
        if (status === ServingStatus.SERVING) serving.resolve();
        if (status === ServingStatus.NOT_SERVING) notServing.resolve();
      }),
    );
    await serving.promise;

    // Two calls in flight when the signal arrives: a stream that takes about
    // a second and a unary call that answers after 1.2 s.
    const firstMessage = signalled();
    const streaming = settle(
      readAll(echo.echoStream({ message: "drain", count: 5, intervalMs: 250 }), () => firstMessage.resolve()),
    );
    const unary = settle(echo.echo({ message: "slow" }, { headers: { "x-delay-ms": "1200" } }));
    await firstMessage.promise;

    const signalledAt = performance.now();
    const exited = service.stop("SIGTERM");

    await notServing.promise;
    // The shutdown delay is a window in which health says NOT_SERVING but
    // calls are still accepted, so load balancers can move away.
    expect((await health.check({ service: "" })).status).toBe(ServingStatus.NOT_SERVING);
    expect((await health.check({ service: EchoService.typeName })).status).toBe(ServingStatus.NOT_SERVING);
    expect((await echo.echo({ message: "during the delay" })).message).toBe("during the delay");

    // Watch streams end when the delay is over, so they do not hold the drain.
    const watchOutcome = await watching;
    expect(watchOutcome.error).toBeUndefined();
    expect(watched).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    const watchEndedAfterMs = performance.now() - signalledAt;
    expect(watchEndedAfterMs).toBeGreaterThanOrEqual(500);

    // After the delay the server takes no new calls...
    const refused = await settle(echo.echo({ message: "after the delay" }));
    expect(asConnectError(refused.error).code).toBe(Code.Unavailable);

    // ...but the ones in flight complete successfully.
    const streamOutcome = await streaming;
    expect(streamOutcome.error).toBeUndefined();
    expect(streamOutcome.value?.map((response) => response.index)).toEqual([0, 1, 2, 3, 4]);
    const unaryOutcome = await unary;
    expect(unaryOutcome.error).toBeUndefined();
    expect(unaryOutcome.value?.message).toBe("slow");

    expect(await exited).toBe(0);
    expect(service.logs.some((entry) => entry.msg === "grace period over; cancelling the calls still in flight")).toBe(
      false,
    );
  });

  it("ends a dozen Watch streams at the drain, with no listener-leak warning", async () => {
    let stderr = "";
    const service = await spawnService({
      entry: echoMain,
      env: { TLS: "off", SHUTDOWN_DELAY: "0", SHUTDOWN_GRACE: "5s" },
      onStderr: (text) => (stderr += text),
    });
    processes.push(service);
    const transport = createTransport({ target: service.address });
    transports.push(transport);
    const health = createClient(Health, transport);
    const first = Array.from({ length: 12 }, () => signalled());
    const watches = first.map((seen) => settle(readAll(health.watch({ service: "" }), () => seen.resolve())));
    await Promise.all(first.map((seen) => seen.promise));
    expect(await service.stop("SIGTERM")).toBe(0);
    for (const outcome of await Promise.all(watches)) expect(outcome.error).toBeUndefined();
    expect(stderr).not.toContain("MaxListenersExceededWarning");
  });

  it("cancels calls still running after the grace period and still exits 0", async () => {
    const { service, echo } = await startEcho({ SHUTDOWN_DELAY: "0", SHUTDOWN_GRACE: "300ms" });

    // A unary call and a stream that never finish by themselves. The unary
    // call goes first on the same connection, so once the stream's first
    // message is back both handlers are running.
    const unary = settle(echo.echo({ message: "forever" }, { headers: { "x-wait-for-abort": "1" } }));
    const firstMessage = signalled();
    const streaming = settle(
      readAll(echo.echoStream({ message: "forever", count: 1 }, { headers: { "x-wait-for-abort": "1" } }), () =>
        firstMessage.resolve(),
      ),
    );
    await firstMessage.promise;

    const signalledAt = performance.now();
    const exitCode = await service.stop("SIGTERM");
    const exitedAfterMs = performance.now() - signalledAt;

    expect(exitCode).toBe(0);
    expect(exitedAfterMs).toBeGreaterThanOrEqual(250);
    expect(exitedAfterMs).toBeLessThan(5_000);
    expect(service.logs.some((entry) => entry.msg === "grace period over; cancelling the calls still in flight")).toBe(
      true,
    );

    const streamOutcome = await streaming;
    expect(streamOutcome.value).toBeUndefined();
    expect([Code.Canceled, Code.Unavailable]).toContain(asConnectError(streamOutcome.error).code);
    const unaryOutcome = await unary;
    expect([Code.Canceled, Code.Unavailable]).toContain(asConnectError(unaryOutcome.error).code);
  });

  it("exits 0 at once on SIGTERM when nothing is in flight", async () => {
    const { service, echo } = await startEcho({ SHUTDOWN_GRACE: "10s" });
    await echo.echo({ message: "one call" });
    const signalledAt = performance.now();
    expect(await service.stop("SIGTERM")).toBe(0);
    expect(performance.now() - signalledAt).toBeLessThan(3_000);
  });

  it("drains on SIGINT as on SIGTERM", async () => {
    const { service } = await startEcho();
    expect(await service.stop("SIGINT")).toBe(0);
    await vi.waitFor(() =>
      expect(service.logs.some((entry) => entry.msg === "shutting down" && entry.signal === "SIGINT")).toBe(true),
    );
  });
});
