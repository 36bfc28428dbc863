// Server reflection, seen by a reflection client that has no .proto files:
// `buf curl` (shipped with @bufbuild/buf) against a spawned echo process.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnService, type ServiceProcess } from "@shopmesh/cli";

const echoMain = fileURLToPath(new URL("./support/echo-main.ts", import.meta.url));
const buf = fileURLToPath(new URL("../../../node_modules/.bin/buf", import.meta.url));

interface BufResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs `buf curl` with the gRPC protocol over h2c; never rejects. */
function bufCurl(args: string[]): Promise<BufResult> {
  return new Promise((resolve) => {
    execFile(
      buf,
      ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args],
      { timeout: 20_000 },
      (error, stdout, stderr) => {
        const exitCode = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({ exitCode, stdout, stderr });
      },
    );
  });
}

/** Parses the JSON documents buf prints one after the other. */
function jsonDocuments(text: string): unknown[] {
  const trimmed = text.trim();
  return trimmed === "" ? [] : (JSON.parse(`[${trimmed.replace(/}\s*{/g, "},{")}]`) as unknown[]);
}

function lines(text: string): string[] {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "");
}

describe("server reflection with buf curl", () => {
  let echo: ServiceProcess;
  let base: string;

  beforeAll(async () => {
    echo = await spawnService({ entry: echoMain, env: { TLS: "off" } });
    base = `http://${echo.address}`;
  });

  afterAll(async () => {
    expect(await echo?.stop()).toBe(0);
  });

  it("lists the hosted services and health without .proto files", async () => {
    const result = await bufCurl(["--list-services", base]);
    expect(result.stderr).toBe("");
    expect(result.exitCode).toBe(0);
    expect(lines(result.stdout)).toEqual(
      expect.arrayContaining(["shopmesh.echo.v1.EchoService", "grpc.health.v1.Health"]),
    );
  });

  it("lists the methods", async () => {
    const result = await bufCurl(["--list-methods", base]);
    expect(result.exitCode).toBe(0);
    expect(lines(result.stdout)).toEqual(
      expect.arrayContaining([
        "shopmesh.echo.v1.EchoService/Echo",
        "shopmesh.echo.v1.EchoService/EchoStream",
        "grpc.health.v1.Health/Check",
        "grpc.health.v1.Health/Watch",
      ]),
    );
  });

  it("serves the older v1alpha reflection protocol too", async () => {
    const result = await bufCurl(["--reflect-protocol", "grpc-v1alpha", "--list-services", base]);
    expect(result.exitCode).toBe(0);
    expect(lines(result.stdout)).toEqual(
      expect.arrayContaining(["shopmesh.echo.v1.EchoService", "grpc.health.v1.Health"]),
    );
  });

  it("serves the v1 reflection protocol when asked for it alone", async () => {
    const result = await bufCurl(["--reflect-protocol", "grpc-v1", "--list-services", base]);
    expect(result.exitCode).toBe(0);
    expect(lines(result.stdout)).toContain("shopmesh.echo.v1.EchoService");
  });

  it("calls a unary method from JSON, with the schema from reflection", async () => {
    const result = await bufCurl(["-d", '{"message":"hi"}', `${base}/shopmesh.echo.v1.EchoService/Echo`]);
    expect(result.stderr).toBe("");
    expect(result.exitCode).toBe(0);
    expect(jsonDocuments(result.stdout)).toEqual([{ message: "hi" }]);
  });

  it("calls a server-streaming method, using field names only the schema knows", async () => {
    const result = await bufCurl([
      "-d",
      '{"message":"s","count":3,"intervalMs":1}',
      `${base}/shopmesh.echo.v1.EchoService/EchoStream`,
    ]);
    expect(result.exitCode).toBe(0);
    expect(jsonDocuments(result.stdout)).toEqual([
      { message: "s" },
      { message: "s", index: 1 },
      { message: "s", index: 2 },
    ]);
  });

  it("rejects a field the schema does not have", async () => {
    const result = await bufCurl(["-d", '{"mesage":"typo"}', `${base}/shopmesh.echo.v1.EchoService/Echo`]);
    expect(result.exitCode).not.toBe(0);
    expect(result.stderr).toContain("mesage");
  });

  it("checks health", async () => {
    const result = await bufCurl([
      "-d",
      '{"service":"shopmesh.echo.v1.EchoService"}',
      `${base}/grpc.health.v1.Health/Check`,
    ]);
    expect(result.exitCode).toBe(0);
    expect(jsonDocuments(result.stdout)).toEqual([{ status: "SERVING" }]);
  });

  it("reports a handler's status code as buf's exit code (code << 3)", async () => {
    const result = await bufCurl([
      "-H",
      "x-fail-code: 5",
      "-H",
      "x-fail-message: no such echo",
      "-d",
      '{"message":"hi"}',
      `${base}/shopmesh.echo.v1.EchoService/Echo`,
    ]);
    expect(result.exitCode).toBe(5 << 3);
    expect(jsonDocuments(result.stderr)).toEqual([{ code: "not_found", message: "no such echo" }]);
  });
});
