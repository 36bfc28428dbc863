// What the SDK's grpc-js transport reports when the connection under a call is
// torn down, against a bare HTTP/2 server process that breaks calls on
// request: a lost connection is UNAVAILABLE (safe to retry an idempotent
// read), never the INTERNAL that grpc-js reports for some of them; and what
// the retry option does with an UNAVAILABLE.
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, type ConnectError } from "@connectrpc/connect";
import { spawnService, type ServiceProcess } from "@shopmesh/cli";
import { createClient, createGrpcTransport, type GrpcTransport } from "@shopmesh/sdk";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { isConnectionLoss } from "../src/grpc-error.js";
import { failure } from "../../test/support/failure.js";

const entry = fileURLToPath(new URL("./support/teardown-server.ts", import.meta.url));

let server: ServiceProcess;
const transports: GrpcTransport[] = [];

beforeAll(async () => {
  server = await spawnService({ entry });
});

afterAll(async () => {
  for (const transport of transports) transport.close();
  await server?.stop("SIGKILL");
});

/** A client on a connection of its own, since several of these calls end the connection. */
function products() {
  const transport = createGrpcTransport({ target: server.address });
  transports.push(transport);
  return createClient(ProductsService, transport);
}

const teardown = (how: string) => ({ headers: { "x-teardown": how }, timeoutMs: 5000 });

async function unaryFailure(how: string): Promise<ConnectError> {
  return failure(products().getProduct({ productId: "any" }, teardown(how)));
}

async function streamFailure(how: string): Promise<ConnectError> {
  return failure(
    (async () => {
      for await (const _ of products().streamEvents({}, teardown(how))) {
        // No event comes; the call breaks first.
      }
    })(),
  );
}

describe("a connection torn down mid-call", () => {
  it("by the server's GOAWAY with INTERNAL_ERROR is UNAVAILABLE, for unary and streaming calls", async () => {
    const unary = await unaryFailure("session-error");
    expect([unary.code, unary.rawMessage]).toEqual([
      Code.Unavailable,
      expect.stringMatching(/Session closed with error code 2/),
    ]);
    const streaming = await streamFailure("session-error");
    expect([streaming.code, streaming.rawMessage]).toEqual([
      Code.Unavailable,
      expect.stringMatching(/Session closed with error code 2/),
    ]);
  });

  it("by a session closed without an error code is UNAVAILABLE", async () => {
    expect((await unaryFailure("session-destroy")).code).toBe(Code.Unavailable);
    expect((await streamFailure("session-destroy")).code).toBe(Code.Unavailable);
  });

  it("by a stream the server refused (REFUSED_STREAM) is UNAVAILABLE", async () => {
    expect((await unaryFailure("refuse")).code).toBe(Code.Unavailable);
  });

  it("keeps INTERNAL for one stream reset with INTERNAL_ERROR on a connection that stays up", async () => {
    const client = products();
    const reset = await failure(client.getProduct({ productId: "any" }, teardown("stream-internal")));
    expect([reset.code, reset.rawMessage]).toEqual([
      Code.Internal,
      expect.stringMatching(/^Received RST_STREAM with code 2/),
    ]);
    // The connection is still there and still answers.
    expect((await failure(client.getProduct({ productId: "any" }, { timeoutMs: 5000 }))).code).toBe(Code.Unimplemented);
  });
});

describe("retries", () => {
  const failingFirst = (key: string, failures: number) => ({
    headers: { "x-unavailable-first": `${key}:${failures}` },
    timeoutMs: 5000,
  });
  const withRetry = (names: string[], maxAttempts?: number) => {
    const transport = createGrpcTransport({ target: server.address, retry: { names, maxAttempts } });
    transports.push(transport);
    return createClient(ProductsService, transport);
  };

  it("are off by default: an UNAVAILABLE reaches the caller", async () => {
    expect((await failure(products().getProduct({ productId: "a" }, failingFirst("off", 1)))).code).toBe(
      Code.Unavailable,
    );
  });

  it("send a call that failed with UNAVAILABLE again, up to maxAttempts, for the services named", async () => {
    const client = withRetry(["shopmesh.products.v1.ProductsService"], 3);
    let trailer: Headers | undefined;
    await client.getProduct({ productId: "a" }, { ...failingFirst("two", 2), onTrailer: (t) => (trailer = t) });
    expect(trailer?.get("x-attempt")).toBe("3");
    expect((await failure(client.getProduct({ productId: "a" }, failingFirst("three", 3)))).code).toBe(
      Code.Unavailable,
    );
  });

  it("leave methods that are not named alone", async () => {
    const client = withRetry(["shopmesh.products.v1.ProductsService/ListProducts"]);
    expect((await failure(client.getProduct({ productId: "a" }, failingFirst("unnamed", 1)))).code).toBe(
      Code.Unavailable,
    );
  });

  describe("after the response headers arrived", () => {
    const resetAfterHeaders = (key: string, failures: number) => ({
      headers: { "x-reset-after-headers": `${key}:${failures}` },
      timeoutMs: 5000,
    });
    /** How many attempts the server saw with a key, read from one more call that it answers. */
    const attemptsSeen = async (key: string) => {
      let trailer: Headers | undefined;
      await products().getProduct(
        { productId: "a" },
        { ...resetAfterHeaders(key, 0), onTrailer: (t) => (trailer = t) },
      );
      return Number(trailer?.get("x-attempt")) - 1;
    };

    it("send a read the contract marks free of side effects again, within maxAttempts", async () => {
      const client = withRetry(["shopmesh.products.v1.ProductsService"], 3);
      let trailer: Headers | undefined;
      await client.getProduct({ productId: "a" }, { ...resetAfterHeaders("get", 2), onTrailer: (t) => (trailer = t) });
      expect(trailer?.get("x-attempt")).toBe("3");

      const exhausted = await failure(client.getProduct({ productId: "a" }, resetAfterHeaders("get-3", 3)));
      expect(exhausted.code).toBe(Code.Unavailable);
      expect(await attemptsSeen("get-3")).toBe(3);
    });

    it("send a server's UNAVAILABLE again, unless its pushback says not to", async () => {
      const client = withRetry(["shopmesh.products.v1.ProductsService"], 3);
      const unavailable = (key: string, pushback?: string) => ({
        headers: {
          "x-unavailable-after-headers": `${key}:1`,
          ...(pushback === undefined ? {} : { "x-pushback": pushback }),
        },
        timeoutMs: 5000,
      });
      let trailer: Headers | undefined;
      await client.getProduct({ productId: "a" }, { ...unavailable("plain"), onTrailer: (t) => (trailer = t) });
      expect(trailer?.get("x-attempt")).toBe("2");
      await client.getProduct({ productId: "a" }, { ...unavailable("wait", "20"), onTrailer: (t) => (trailer = t) });
      expect(trailer?.get("x-attempt")).toBe("2");
      // gRPC's retry design: a negative pushback means "do not retry".
      expect((await failure(client.getProduct({ productId: "a" }, unavailable("stop", "-1")))).code).toBe(
        Code.Unavailable,
      );
      const answered = await products().getProduct(
        { productId: "a" },
        { headers: { "x-unavailable-after-headers": "stop:0" }, timeoutMs: 5000, onTrailer: (t) => (trailer = t) },
      );
      expect(answered).toBeDefined();
      expect(trailer?.get("x-attempt")).toBe("2");
    });

    it("leave a method the contract does not mark safe to repeat to fail, as grpc-js does", async () => {
      const client = withRetry(["shopmesh.products.v1.ProductsService"], 3);
      expect((await failure(client.createProduct({ name: "x" }, resetAfterHeaders("create", 1)))).code).toBe(
        Code.Unavailable,
      );
      // One attempt only: the headers had arrived, so grpc-js did not retry it either.
      expect(await attemptsSeen("create")).toBe(1);
    });
  });

  it("refuse settings grpc-js cannot honour, naming the field", () => {
    expect(() => createGrpcTransport({ target: server.address, retry: { names: ["a.B"], maxAttempts: 6 } })).toThrow(
      /retry.maxAttempts: 6/,
    );
    expect(() => createGrpcTransport({ target: server.address, retry: { names: [] } })).toThrow(/retry.names/);
    expect(() => createGrpcTransport({ target: server.address, retry: { names: ["a/b/c"] } })).toThrow(
      /retry.names: "a\/b\/c"/,
    );
  });
});

describe("isConnectionLoss", () => {
  it("recognises a call that could not be started on a closed or draining session", () => {
    expect(
      isConnectionLoss(Code.Internal, "Failed to start HTTP/2 stream with error The session has been destroyed"),
    ).toBe(true);
    const draining = "Failed to start HTTP/2 stream with error New streams cannot be created after receiving a GOAWAY";
    expect(isConnectionLoss(Code.Internal, draining)).toBe(true);
  });

  it("leaves an INTERNAL the server sent alone, even one that mentions a session", () => {
    expect(isConnectionLoss(Code.Internal, "database session failed")).toBe(false);
    expect(isConnectionLoss(Code.Unknown, "Session closed with error code 2")).toBe(false);
  });
});
