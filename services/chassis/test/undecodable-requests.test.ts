// Request bodies that are not valid protobuf get INVALID_ARGUMENT naming the
// type, never INTERNAL, on every method a chassis server hosts: the service's
// own (unary and server streaming), health, reflection, and the admin
// listener's fault injection; and on the HTTP port, in Connect and gRPC-Web. Raw bytes go over a real socket to a spawned
// echo process from a grpc-js client whose serializer passes them unchanged.
import { connect } from "node:http2";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Client,
  credentials,
  Metadata,
  Server,
  ServerCredentials,
  status as GrpcStatus,
  type ServiceError,
} from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { endStreamFromJson } from "@connectrpc/connect/protocol-connect";
import { trailerParse } from "@connectrpc/connect/protocol-grpc-web";
import { grpcFrame, streamStatus } from "../../../test/support/raw-grpc-call.js";
import { hostService } from "@shopmesh/chassis";
import { spawnService, type ServiceProcess } from "@shopmesh/cli";
import {
  EchoRequestSchema,
  EchoResponseSchema,
  EchoService,
  EchoStreamRequestSchema,
  EchoStreamResponseSchema,
} from "../../../gen/shopmesh/echo/v1/echo_pb.js";

const echoMain = fileURLToPath(new URL("./support/echo-main.ts", import.meta.url));

const same = (bytes: Buffer) => bytes;

/**
 * Malformed bodies, for request types whose field 1 is a string and which
 * have no field 15 (every type below).
 */
const malformed: Record<string, number[]> = {
  "random bytes": [0xff, 0xfe, 0x01, 0x99, 0x12, 0x34, 0x56, 0xab],
  "a truncated varint": [0x78, 0x96],
  "a wire type that does not exist": [0x0f],
  "a wrong wire type (fixed64 for a string field)": [0x09, 1, 2, 3, 4, 5, 6, 7, 8],
  "invalid UTF-8 in a string field": [0x0a, 0x02, 0xc3, 0x28],
  "very deep nesting (200 groups)": Array.from({ length: 200 }, () => 0x7b),
};

/** How a call ended: its status code and message. */
interface Ended {
  code: GrpcStatus;
  details: string;
}

function unary(client: Client, path: string, body: Buffer): Promise<Ended & { response?: Buffer }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      same,
      same,
      body,
      { deadline: Date.now() + 10_000 },
      (error: ServiceError | null, response?: Buffer) =>
        resolve(error ? { code: error.code, details: error.details } : { code: GrpcStatus.OK, details: "", response }),
    );
  });
}

function serverStream(client: Client, path: string, body: Buffer): Promise<Ended> {
  return new Promise((resolve) => {
    const call = client.makeServerStreamRequest(path, same, same, body, new Metadata(), {
      deadline: Date.now() + 10_000,
    });
    call.on("data", () => undefined);
    call.on("error", (error: ServiceError) => resolve({ code: error.code, details: error.details }));
    call.on("status", (status: Ended) => {
      if (status.code === GrpcStatus.OK) resolve(status);
    });
  });
}

function bidiStream(client: Client, path: string, body: Buffer): Promise<Ended> {
  return new Promise((resolve) => {
    const call = client.makeBidiStreamRequest(path, same, same, new Metadata(), { deadline: Date.now() + 10_000 });
    call.on("data", () => undefined);
    call.on("error", (error: ServiceError) => resolve({ code: error.code, details: error.details }));
    call.on("status", (status: Ended) => {
      if (status.code === GrpcStatus.OK) resolve(status);
    });
    call.write(body);
    call.end();
  });
}

/** A valid EchoRequest, which is also a valid EchoStreamRequest (field 1, a string). */
function valid(): Uint8Array {
  return toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: "one" }));
}

/** `payload` in an envelope of Connect streaming and gRPC-Web: flags, a 32-bit length, the bytes. */
function enveloped(flags: number, payload: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header[0] = flags;
  header.writeUInt32BE(payload.byteLength, 1);
  return Buffer.concat([header, payload]);
}

/** The envelopes of a whole Connect streaming or gRPC-Web body. */
function envelopes(bytes: Uint8Array): { flags: number; payload: Uint8Array }[] {
  const found: { flags: number; payload: Uint8Array }[] = [];
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at < view.byteLength; ) {
    const length = view.readUInt32BE(at + 1);
    found.push({ flags: view[at]!, payload: view.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return found;
}

describe("undecodable request bodies", () => {
  let echo: ServiceProcess;
  let client: Client;
  let admin: Client;

  beforeAll(async () => {
    echo = await spawnService({ entry: echoMain, env: { TLS: "off", FAULT_INJECTION: "on", DEVELOPMENT_MODE: "on" } });
    client = new Client(echo.address, credentials.createInsecure());
    admin = new Client(`127.0.0.1:${echo.adminPort}`, credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    admin?.close();
    expect(await echo?.stop()).toBe(0);
  });

  it("pass a valid body through the same raw client", async () => {
    const body = Buffer.from(toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: "raw" })));
    const ended = await unary(client, "/shopmesh.echo.v1.EchoService/Echo", body);
    expect(ended.code).toBe(GrpcStatus.OK);
    expect(fromBinary(EchoResponseSchema, ended.response!).message).toBe("raw");
  });

  describe.each(Object.entries(malformed))("%s", (_kind, bytes) => {
    const body = Buffer.from(bytes);

    it("gets INVALID_ARGUMENT from a unary method, naming the request type", async () => {
      const ended = await unary(client, "/shopmesh.echo.v1.EchoService/Echo", body);
      expect(ended.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(ended.details).toMatch(/^request: cannot decode shopmesh\.echo\.v1\.EchoRequest: \S/);
    });

    it("gets INVALID_ARGUMENT from a server-streaming method", async () => {
      const ended = await serverStream(client, "/shopmesh.echo.v1.EchoService/EchoStream", body);
      expect(ended.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(ended.details).toMatch(/^request: cannot decode shopmesh\.echo\.v1\.EchoStreamRequest: \S/);
    });

    it("gets INVALID_ARGUMENT from health Check and Watch", async () => {
      for (const ended of [
        await unary(client, "/grpc.health.v1.Health/Check", body),
        await serverStream(client, "/grpc.health.v1.Health/Watch", body),
      ]) {
        expect(ended.code).toBe(GrpcStatus.INVALID_ARGUMENT);
        expect(ended.details).toMatch(/^request: cannot decode grpc\.health\.v1\.HealthCheckRequest: \S/);
      }
    });

    it("gets INVALID_ARGUMENT from the admin listener's fault injection", async () => {
      const ended = await unary(admin, "/shopmesh.faults.v1.FaultInjectionService/ClearFaults", body);
      expect(ended.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(ended.details).toMatch(/^request: cannot decode shopmesh\.faults\.v1\.ClearFaultsRequest: \S/);
    });
  });

  it.each([
    ["/shopmesh.echo.v1.EchoService/Echo", 0, "none"],
    ["/shopmesh.echo.v1.EchoService/Echo", 2, "more than one"],
    ["/shopmesh.echo.v1.EchoService/EchoStream", 0, "none"],
    ["/shopmesh.echo.v1.EchoService/EchoStream", 2, "more than one"],
    ["/grpc.health.v1.Health/Check", 0, "none"],
  ])("%s with %i request messages gets INVALID_ARGUMENT naming the method", async (path, count, sent) => {
    const messages = Array.from({ length: count }, valid);
    const session = connect(`http://${echo.address}`);
    try {
      const stream = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
      });
      for (const message of messages) stream.write(grpcFrame(message));
      stream.end();
      expect(await streamStatus(stream)).toEqual({
        code: GrpcStatus.INVALID_ARGUMENT,
        message: `request: ${path} takes one request message; this call sent ${sent}`,
      });
    } finally {
      session.destroy();
    }
  });

  it("a Check of no message on HEALTH_PORT gets INVALID_ARGUMENT as well", async () => {
    const withHealthPort = await spawnService({ entry: echoMain, env: { TLS: "off", HEALTH_PORT: "0" } });
    const session = connect(`http://127.0.0.1:${withHealthPort.logs.find((line) => line.msg === "ready")!.healthPort}`);
    try {
      const path = "/grpc.health.v1.Health/Check";
      const stream = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.end();
      expect(await streamStatus(stream)).toEqual({
        code: GrpcStatus.INVALID_ARGUMENT,
        message: `request: ${path} takes one request message; this call sent none`,
      });
    } finally {
      session.destroy();
      expect(await withHealthPort.stop()).toBe(0);
    }
  });

  // Reflection decodes with protobuf.js, which takes invalid UTF-8 and reads
  // the wrong-wire-type body above as valid, so only the bodies it refuses.
  it.each(["random bytes", "a truncated varint", "a wire type that does not exist", "very deep nesting (200 groups)"])(
    "%s get INVALID_ARGUMENT from server reflection, v1 and v1alpha",
    async (kind) => {
      for (const version of ["v1", "v1alpha"]) {
        const ended = await bidiStream(
          client,
          `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`,
          Buffer.from(malformed[kind]!),
        );
        expect(ended.code).toBe(GrpcStatus.INVALID_ARGUMENT);
        expect(ended.details).toMatch(
          new RegExp(`^request: cannot decode grpc\\.reflection\\.${version}\\.ServerReflectionRequest: \\S`),
        );
      }
    },
  );

  describe.each(Object.entries(malformed))("%s on the HTTP port", (_kind, bytes) => {
    const body = Buffer.from(bytes);
    const url = (method: string) => `http://127.0.0.1:${echo.httpPort}/shopmesh.echo.v1.EchoService/${method}`;

    it("gets invalid_argument from Connect unary, naming the request type", async () => {
      const response = await fetch(url("Echo"), {
        method: "POST",
        headers: { "content-type": "application/proto" },
        body,
      });
      expect(response.status).toBe(400);
      const error = (await response.json()) as { code: string; message: string };
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toMatch(/^request: cannot decode shopmesh\.echo\.v1\.EchoRequest: \S/);
    });

    it("gets INVALID_ARGUMENT in gRPC-Web's trailers", async () => {
      const response = await fetch(url("Echo"), {
        method: "POST",
        headers: { "content-type": "application/grpc-web+proto" },
        body: enveloped(0, body),
      });
      const frames = envelopes(new Uint8Array(await response.arrayBuffer()));
      expect(frames.map((frame) => frame.flags)).toEqual([0x80]);
      const trailer = trailerParse(frames[0]!.payload);
      expect(trailer.get("grpc-status")).toBe(String(GrpcStatus.INVALID_ARGUMENT));
      expect(decodeURIComponent(trailer.get("grpc-message")!)).toMatch(
        /^request: cannot decode shopmesh\.echo\.v1\.EchoRequest: \S/,
      );
    });

    it("gets invalid_argument at the end of a Connect server stream", async () => {
      const response = await fetch(url("EchoStream"), {
        method: "POST",
        headers: { "content-type": "application/connect+proto" },
        body: enveloped(0, body),
      });
      const frames = envelopes(new Uint8Array(await response.arrayBuffer()));
      expect(frames.map((frame) => frame.flags)).toEqual([0x02]);
      const { error } = endStreamFromJson(frames[0]!.payload);
      expect(error?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(error?.rawMessage).toMatch(/^request: cannot decode shopmesh\.echo\.v1\.EchoStreamRequest: \S/);
    });
  });

  describe("requests the HTTP port cannot read, other than undecodable bytes", () => {
    const url = (method: string, query = "") =>
      `http://127.0.0.1:${echo.httpPort}/shopmesh.echo.v1.EchoService/${method}${query}`;
    const valid = Buffer.from(toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: "x" })));
    const validStream = Buffer.from(
      toBinary(EchoStreamRequestSchema, create(EchoStreamRequestSchema, { message: "x", count: 1 })),
    );

    /** The code and message of a Connect unary error answer. */
    async function connectError(response: Response): Promise<[number, string, string]> {
      const error = (await response.json()) as { code: string; message: string };
      return [response.status, error.code, error.message];
    }

    /** The code and message of a gRPC-Web answer that is only trailers. */
    async function grpcWebStatus(response: Response): Promise<[string | null, string]> {
      const frames = envelopes(new Uint8Array(await response.arrayBuffer()));
      expect(frames.map((frame) => frame.flags)).toEqual([0x80]);
      const trailer = trailerParse(frames[0]!.payload);
      return [trailer.get("grpc-status"), decodeURIComponent(trailer.get("grpc-message") ?? "")];
    }

    /** The error at the end of a Connect stream that sent no message. */
    async function connectStreamError(response: Response): Promise<[number | undefined, string | undefined]> {
      const frames = envelopes(new Uint8Array(await response.arrayBuffer()));
      expect(frames.map((frame) => frame.flags)).toEqual([0x02]);
      const { error } = endStreamFromJson(frames[0]!.payload);
      return [error?.code, error?.rawMessage];
    }

    it("a truncated gzip body (Connect unary)", async () => {
      const response = await fetch(url("Echo"), {
        method: "POST",
        headers: { "content-type": "application/proto", "content-encoding": "gzip" },
        body: gzipSync(valid).subarray(0, 10),
      });
      expect(await connectError(response)).toEqual([
        400,
        "invalid_argument",
        expect.stringMatching(/^request: cannot read shopmesh\.echo\.v1\.EchoRequest: \S/),
      ]);
    });

    it("a GET whose message is not base64 (Connect unary)", async () => {
      const response = await fetch(url("Echo", "?connect=v1&encoding=proto&base64=1&message=!!!!"));
      expect(await connectError(response)).toEqual([
        400,
        "invalid_argument",
        "request: cannot read shopmesh.echo.v1.EchoRequest: its bytes are not valid (a GET's message= must be base64url with base64=1)",
      ]);
    });

    it("a compressed envelope with no encoding, and two messages for a unary method (gRPC-Web)", async () => {
      const compressed = await fetch(url("Echo"), {
        method: "POST",
        headers: { "content-type": "application/grpc-web+proto" },
        body: enveloped(1, valid),
      });
      expect(await grpcWebStatus(compressed)).toEqual([
        String(GrpcStatus.INVALID_ARGUMENT),
        expect.stringMatching(/^request: cannot read shopmesh\.echo\.v1\.EchoRequest: received compressed envelope/),
      ]);
      const twice = await fetch(url("Echo"), {
        method: "POST",
        headers: { "content-type": "application/grpc-web+proto" },
        body: Buffer.concat([enveloped(0, valid), enveloped(0, valid)]),
      });
      expect(await grpcWebStatus(twice)).toEqual([
        String(GrpcStatus.INVALID_ARGUMENT),
        "request: /shopmesh.echo.v1.EchoService/Echo takes one request message; this call sent more than one",
      ]);
    });

    it("a server stream's request with no message, two, or a compressed one with no encoding (Connect)", async () => {
      const send = (body: Buffer) =>
        fetch(url("EchoStream"), { method: "POST", headers: { "content-type": "application/connect+proto" }, body });
      expect(await connectStreamError(await send(Buffer.alloc(0)))).toEqual([
        GrpcStatus.INVALID_ARGUMENT,
        "request: /shopmesh.echo.v1.EchoService/EchoStream takes one request message; this call sent none",
      ]);
      expect(
        await connectStreamError(await send(Buffer.concat([enveloped(0, validStream), enveloped(0, validStream)]))),
      ).toEqual([
        GrpcStatus.INVALID_ARGUMENT,
        "request: /shopmesh.echo.v1.EchoService/EchoStream takes one request message; this call sent more than one",
      ]);
      expect(await connectStreamError(await send(enveloped(1, validStream)))).toEqual([
        GrpcStatus.INVALID_ARGUMENT,
        expect.stringMatching(/^request: cannot read shopmesh\.echo\.v1\.EchoStreamRequest: received compressed/),
      ]);
    });
  });

  it.each([
    [
      "POST",
      "Echo",
      "application/connect+proto",
      415,
      /^content-type "application\/connect\+proto": \/shopmesh\.echo\.v1\.EchoService\/Echo takes application\/json or application\/proto/,
    ],
    [
      "POST",
      "EchoStream",
      "application/json",
      415,
      /^content-type "application\/json": \/shopmesh\.echo\.v1\.EchoService\/EchoStream takes application\/connect\+json/,
    ],
    [
      "GET",
      "Echo?encoding=xml&message={}",
      undefined,
      415,
      /^GET \/shopmesh\.echo\.v1\.EchoService\/Echo: the query takes encoding=json or encoding=proto/,
    ],
    ["PUT", "Echo", "application/json", 405, /^PUT \/shopmesh\.echo\.v1\.EchoService\/Echo: send POST, or GET$/],
    [
      "GET",
      "EchoStream?encoding=json&message={}",
      undefined,
      405,
      /^GET \/shopmesh\.echo\.v1\.EchoService\/EchoStream: send POST \(GET is only for unary methods without side effects\)$/,
    ],
    ["DELETE", "EchoStream", undefined, 405, /^DELETE \/shopmesh\.echo\.v1\.EchoService\/EchoStream: send POST$/],
  ] as const)(
    "%s %s (%s) gets %i with a Connect error saying what to send",
    async (method, path, contentType, status, message) => {
      const response = await fetch(`http://127.0.0.1:${echo.httpPort}/shopmesh.echo.v1.EchoService/${path}`, {
        method,
        headers: contentType === undefined ? {} : { "content-type": contentType },
        ...(method === "GET" || method === "DELETE" ? {} : { body: "{}" }),
      });
      expect(response.status).toBe(status);
      expect(await response.json()).toEqual({ code: "invalid_argument", message: expect.stringMatching(message) });
    },
  );

  it("passes a valid stream through the HTTP port untouched, its messages first", async () => {
    const request = toBinary(EchoStreamRequestSchema, create(EchoStreamRequestSchema, { message: "whole", count: 3 }));
    for (const [contentType, end] of [
      ["application/connect+proto", 0x02],
      ["application/grpc-web+proto", 0x80],
    ] as const) {
      const response = await fetch(`http://127.0.0.1:${echo.httpPort}/shopmesh.echo.v1.EchoService/EchoStream`, {
        method: "POST",
        headers: { "content-type": contentType },
        body: enveloped(0, request),
      });
      const frames = envelopes(new Uint8Array(await response.arrayBuffer()));
      expect(frames.map((frame) => frame.flags)).toEqual([0, 0, 0, end]);
      expect(frames.slice(0, 3).map((frame) => fromBinary(EchoStreamResponseSchema, frame.payload).index)).toEqual([
        0, 1, 2,
      ]);
    }
  });

  it("keeps serving after all of that", async () => {
    const body = Buffer.from(toBinary(EchoRequestSchema, create(EchoRequestSchema, { message: "still here" })));
    const ended = await unary(client, "/shopmesh.echo.v1.EchoService/Echo", body);
    expect(ended.code).toBe(GrpcStatus.OK);
  });
});

describe("undecodable request bodies to a service hosted without the call gate", () => {
  it("get INVALID_ARGUMENT from hostService itself, and the implementation never runs", async () => {
    const seen: unknown[] = [];
    const server = new Server();
    hostService(server, EchoService, {
      async echo(request) {
        seen.push(request);
        return { message: request.message };
      },
      async *echoStream(request) {
        seen.push(request);
        yield { message: request.message, index: 0 };
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    try {
      const body = Buffer.from(malformed["random bytes"]!);
      const unaryEnded = await unary(client, "/shopmesh.echo.v1.EchoService/Echo", body);
      expect(unaryEnded.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(unaryEnded.details).toMatch(/^request: cannot decode shopmesh\.echo\.v1\.EchoRequest: \S/);
      const streamEnded = await serverStream(client, "/shopmesh.echo.v1.EchoService/EchoStream", body);
      expect(streamEnded.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(streamEnded.details).toMatch(/^request: cannot decode shopmesh\.echo\.v1\.EchoStreamRequest: \S/);
      expect(seen).toEqual([]);
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
