// TLS on a service's ports, over real sockets to a real service process:
// what a caller with only the CA certificate may do, what a plaintext caller
// and a server with the wrong name get, how a missing setting is refused, a
// renewed certificate taking effect without a restart, and HTTPS on the HTTP
// port (Connect, gRPC-Web) with the same certificate and renewals.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { fileURLToPath } from "node:url";
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  Code,
  ConnectError,
  createClient,
  createTransport,
  type GrpcTransport,
  type TransportKind,
} from "@shopmesh/sdk";
import { ensureDevelopmentCertificates, issueHostCertificate, type DevelopmentCertificates } from "@shopmesh/chassis";
import { spawnService, type ServiceProcess } from "@shopmesh/cli";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { EchoService } from "../../../gen/shopmesh/echo/v1/echo_pb.js";
import { trustingFetch, type TrustingFetch } from "../../../test/support/trusting-fetch.js";
import { refusedStart } from "../../../test/support/refused-start.js";

const echoMain = fileURLToPath(new URL("./support/echo-main.ts", import.meta.url));
const kinds: TransportKind[] = ["grpc-js", "connect-node"];

let dir: string;
let certificates: DevelopmentCertificates;
let echo: ServiceProcess;
const transports: GrpcTransport[] = [];

const tlsEnv = (identity: string) => ({
  TLS_CERT: certificates.identities[identity]!.certFile,
  TLS_KEY: certificates.identities[identity]!.keyFile,
  TLS_CA: certificates.caFile,
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "shopmesh-tls-"));
  certificates = ensureDevelopmentCertificates(dir, ["echo", "users"]);
  echo = await spawnService({ entry: echoMain, env: { ...tlsEnv("echo"), TLS_RELOAD_INTERVAL: "100ms" } });
});
afterAll(async () => {
  for (const transport of transports.splice(0)) transport.close();
  await echo?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function echoClient(options: Parameters<typeof createTransport>[0]) {
  const transport = createTransport(options);
  transports.push(transport);
  return createClient(EchoService, transport);
}

async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("the call succeeded but should have failed");
}

describe("the development CA", () => {
  it("names each identity in its certificate, keeps keys private, and reuses what is still good", () => {
    const users = new X509Certificate(readFileSync(certificates.identities.users!.certFile));
    expect(users.subjectAltName).toBe(
      "URI:spiffe://shopmesh.local/users, DNS:localhost, DNS:users, IP Address:127.0.0.1",
    );
    expect(users.checkIssued(new X509Certificate(readFileSync(certificates.caFile)))).toBe(true);
    for (const key of ["ca-key.pem", "echo-key.pem", "users-key.pem"])
      expect(statSync(join(dir, key)).mode & 0o777).toBe(0o600);
    expect(ensureDevelopmentCertificates(dir, ["echo", "users"]).issued).toEqual([]);
  });

  it("issues a replica's host its own certificate for a shared identity, naming the host and its address", () => {
    const files = issueHostCertificate(dir, {
      identity: "users",
      file: "users-b",
      dnsNames: ["users-b"],
      ipAddresses: ["10.213.1.12"],
    });
    const replica = new X509Certificate(readFileSync(files.certFile));
    expect(replica.subjectAltName).toBe(
      "URI:spiffe://shopmesh.local/users, DNS:users, DNS:users-b, IP Address:10.213.1.12",
    );
    expect(replica.checkIssued(new X509Certificate(readFileSync(certificates.caFile)))).toBe(true);
    expect(statSync(files.keyFile).mode & 0o777).toBe(0o600);
    // The identity's own files are left alone.
    expect(files.certFile).not.toBe(certificates.identities.users!.certFile);
    expect(() => issueHostCertificate(dir, { identity: "users", file: "../x", dnsNames: [], ipAddresses: [] })).toThrow(
      /not a file name stem/,
    );
  });
});

describe("a service port with TLS", () => {
  it("says so in its ready line", () => {
    expect(echo.logs.find((line) => line.msg === "ready")?.tls).toBe("mutual");
  });

  it.each(kinds)("answers a %s caller that has only the CA certificate", async (kind) => {
    const client = echoClient({
      target: echo.address,
      kind,
      tls: { ca: readFileSync(certificates.caFile), service: "echo" },
    });
    expect((await client.echo({ message: "over TLS" }, { timeoutMs: 10_000 })).message).toBe("over TLS");
  });

  it.each(kinds)("refuses a %s plaintext caller", async (kind) => {
    const error = await failure(
      echoClient({ target: echo.address, kind }).echo({ message: "x" }, { timeoutMs: 5_000 }),
    );
    // What a client makes of TLS bytes when it expected HTTP/2 differs by client (connect-node's
    // reports the session torn down under it as ABORTED); it never gets an answer.
    expect([Code.Unavailable, Code.Internal, Code.Canceled, Code.DeadlineExceeded, Code.Aborted]).toContain(error.code);
  });

  it.each(kinds)("refuses, in a %s client, a server whose certificate names another service", async (kind) => {
    const client = echoClient({
      target: echo.address,
      kind,
      tls: { ca: readFileSync(certificates.caFile), service: "users" },
    });
    const error = await failure(client.echo({ message: "x" }, { timeoutMs: 5_000 }));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.message).toContain("does not name spiffe://shopmesh.local/users");
    expect(error.message).toContain("spiffe://shopmesh.local/echo");
  });

  it("serves a renewed certificate to new connections without a restart", async () => {
    const before = await serialSeen(echo.port, "h2");
    const renewed = renewEchoCertificate();
    expect(renewed).not.toBe(before);
    await vi.waitFor(async () => expect(await serialSeen(echo.port, "h2")).toBe(renewed), {
      timeout: 10_000,
      interval: 100,
    });
  });
});

/** The serial number of the certificate a new TLS connection to `port` is shown. */
async function serialSeen(port: number, alpn: string): Promise<string> {
  const socket = tlsConnect({
    host: "127.0.0.1",
    port,
    ca: readFileSync(certificates.caFile),
    ALPNProtocols: [alpn],
    servername: "echo",
  });
  try {
    await once(socket, "secureConnect");
    return socket.getPeerCertificate().serialNumber;
  } finally {
    socket.destroy();
  }
}

/** Issues echo's certificate again, as a renewal would, and returns its serial number. */
function renewEchoCertificate(): string {
  rmSync(certificates.identities.echo!.certFile);
  expect(ensureDevelopmentCertificates(dir, ["echo"]).issued).toEqual(["echo"]);
  return new X509Certificate(readFileSync(certificates.identities.echo!.certFile)).serialNumber;
}

describe("the HTTP port with TLS", () => {
  let https: TrustingFetch;
  beforeAll(() => {
    https = trustingFetch(readFileSync(certificates.caFile));
  });
  afterAll(() => https.close());

  const echoPath = `/${EchoService.typeName}/Echo`;
  const post = (fetch: typeof globalThis.fetch, url: string) =>
    fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: '{"message":"hi"}' });

  it("answers a JSON POST (as curl --cacert sends it) and a gRPC-Web call over HTTPS with the CA", async () => {
    const response = await post(https.fetch, `https://127.0.0.1:${echo.httpPort}${echoPath}`);
    expect([response.status, await response.json()]).toEqual([200, { message: "hi" }]);
    const grpcWeb = createClient(
      EchoService,
      createGrpcWebTransport({ baseUrl: `https://127.0.0.1:${echo.httpPort}`, fetch: https.fetch }),
    );
    expect((await grpcWeb.echo({ message: "gRPC-Web over TLS" }, { timeoutMs: 10_000 })).message).toBe(
      "gRPC-Web over TLS",
    );
  });

  it("refuses a plaintext request, and a client that does not trust the mesh's CA", async () => {
    // The TLS server reads the plaintext request as a failed handshake and closes the connection unanswered.
    await expect(post(fetch, `http://127.0.0.1:${echo.httpPort}${echoPath}`)).rejects.toThrow(/fetch failed/);
    const untrusted = await post(fetch, `https://127.0.0.1:${echo.httpPort}${echoPath}`).catch(
      (error: unknown) => error as Error & { cause?: { code?: string } },
    );
    expect(untrusted).toBeInstanceOf(Error);
    expect((untrusted as { cause?: { code?: string } }).cause?.code).toMatch(/VERIFY|CERT/);
  });

  it("closes, within HANDSHAKE_TIMEOUT, a connection silent before its TLS handshake or its request's headers", async () => {
    const strict = await spawnService({ entry: echoMain, env: { ...tlsEnv("echo"), HANDSHAKE_TIMEOUT: "300ms" } });
    try {
      const silent = connect(strict.httpPort!, "127.0.0.1");
      silent.on("error", () => undefined);
      await once(silent, "connect");
      const started = performance.now();
      await once(silent, "close");
      expect(performance.now() - started).toBeLessThan(3_000);

      const slow = tlsConnect({
        host: "127.0.0.1",
        port: strict.httpPort!,
        ca: readFileSync(certificates.caFile),
        servername: "echo",
      });
      await once(slow, "secureConnect");
      slow.write(`POST ${echoPath} HTTP/1.1\r\nHost: x\r\n`);
      let answer = "";
      slow.setEncoding("utf8").on("data", (chunk: string) => (answer += chunk));
      await once(slow, "close");
      expect(answer).toMatch(/^HTTP\/1.1 408/);
    } finally {
      await strict.stop();
    }
  });

  it("serves a renewed certificate to new connections without a restart, as the gRPC port does", async () => {
    const before = await serialSeen(echo.httpPort!, "http/1.1");
    expect(before).toBe(await serialSeen(echo.port, "h2"));
    const renewed = renewEchoCertificate();
    expect(renewed).not.toBe(before);
    await vi.waitFor(
      async () =>
        expect([await serialSeen(echo.httpPort!, "http/1.1"), await serialSeen(echo.port, "h2")]).toEqual([
          renewed,
          renewed,
        ]),
      { timeout: 10_000, interval: 100 },
    );
    const response = await post(https.fetch, `https://127.0.0.1:${echo.httpPort}${echoPath}`);
    expect(response.status).toBe(200);
  });
});

describe("TLS settings", () => {
  it("refuses to start without the certificate's path unless TLS=off, exit code 2 naming TLS_CERT", async () => {
    const env = { ...process.env };
    for (const name of ["TLS", "TLS_CERT", "TLS_KEY", "TLS_CA"]) delete env[name];
    const child = spawn(process.execPath, ["--import", "tsx", echoMain], {
      env: { ...env, PORT: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const [code] = (await once(child, "exit")) as [number | null];
    expect(code).toBe(2);
    expect(stderr).toContain("TLS_CERT");
    expect(stderr).toContain("TLS=off");
  });

  it("refuses a key that does not belong to the certificate, naming TLS_KEY", async () => {
    const refused = await refusedStart({
      entry: echoMain,
      env: { ...tlsEnv("echo"), TLS_KEY: certificates.identities.users!.keyFile },
    });
    expect(String(refused)).toMatch(/exited with 2[\s\S]*TLS_KEY/);
  });

  it("serves plaintext with TLS=off, and says so", async () => {
    const plain = await spawnService({ entry: echoMain, env: { TLS: "off" } });
    try {
      expect(plain.logs.find((line) => line.msg === "ready")?.tls).toBe("off");
      expect((await echoClient({ target: plain.address }).echo({ message: "plain" })).message).toBe("plain");
      // The HTTP port stays plain HTTP too.
      const response = await fetch(`http://127.0.0.1:${plain.httpPort}/${EchoService.typeName}/Echo`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"message":"plain"}',
      });
      expect(await response.json()).toEqual({ message: "plain" });
    } finally {
      await plain.stop();
    }
  });
});
