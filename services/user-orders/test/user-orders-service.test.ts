// The GetUserOrders handler in memory, behind the real auth interceptor:
// validation, authorisation, the caller's deadline and the breaker headers.
import { generateKeyPairSync } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { Code, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import {
  authInterceptor,
  createTokenSigner,
  createTokenVerifier,
  newId,
  type TokenSigner,
  type TokenVerifier,
} from "@shopmesh/chassis";
import { bearerToken } from "@shopmesh/sdk";
import { Dependency, UserOrdersService } from "@shopmesh/sdk/userorders/v1";
import { createUserOrdersAggregator, type AggregatorSettings } from "../src/aggregate.js";
import { createUserOrdersService } from "../src/user-orders-service.js";
import { failure } from "../../../test/support/failure.js";
import {
  fail,
  fakeDependencies,
  hang,
  makeOrder,
  makeProduct,
  makeUser,
  recordingLog,
  testSettings,
} from "./support/fake-dependencies.js";

let signer: TokenSigner;
let verifier: TokenVerifier;
beforeAll(async () => {
  const keys = generateKeyPairSync("ed25519", {
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  signer = await createTokenSigner(keys.privateKey, 600);
  verifier = await createTokenVerifier(keys.publicKey);
});

const tea = makeProduct("Tea", 450n);
const alice = makeUser("Alice");
const bob = makeUser("Bob");

async function setup(settings: AggregatorSettings = testSettings()) {
  const fakes = fakeDependencies({
    users: [alice, bob],
    orders: [makeOrder(alice.id, [{ product: tea, quantity: 2 }])],
    products: [tea],
  });
  const aggregator = createUserOrdersAggregator({ ...fakes.clients, settings, log: recordingLog() });
  const service = createUserOrdersService(aggregator);
  // One router per client, all hosting the same handlers (and breakers).
  const clientFor = async (
    userId: string | undefined,
    role: "customer" | "admin" = "customer",
  ): Promise<Client<typeof UserOrdersService>> => {
    const token = userId === undefined ? undefined : (await signer.sign({ userId, role })).token;
    const transport = createRouterTransport(({ service: host }) => host(UserOrdersService, service), {
      router: { interceptors: [authInterceptor({ verifier })] },
      transport: { interceptors: token === undefined ? [] : [bearerToken(token)] },
    });
    return createClient(UserOrdersService, transport);
  };
  return { ...fakes, clientFor };
}

describe("GetUserOrders", () => {
  it("gives a customer its own view and forwards its token to every dependency", async () => {
    const { clientFor, scripts } = await setup();
    const view = await (await clientFor(alice.id)).getUserOrders({ userId: alice.id });
    expect(view.profile?.displayName).toBe("Alice");
    expect(view.orders[0]!.lines[0]!.product?.name).toBe("Tea");
    expect(view.degradations).toEqual([]);
    for (const script of Object.values(scripts)) expect(script.calls[0]!.authorization).toMatch(/^Bearer ey/);
  });

  it.each([
    ["user_id", { userId: "" }],
    ["user_id", { userId: "nope" }],
    ["page_size", { userId: alice.id, pageSize: 101 }],
    ["page_size", { userId: alice.id, pageSize: -1 }],
    ["page_token", { userId: alice.id, pageToken: "x".repeat(1025) }],
  ])("names the bad field %s: INVALID_ARGUMENT", async (field, request) => {
    const { clientFor, scripts } = await setup();
    const error = await failure((await clientFor(alice.id)).getUserOrders(request));
    expect([error.code, error.rawMessage.split(":")[0]]).toEqual([Code.InvalidArgument, field]);
    expect(scripts.orders.calls).toHaveLength(0);
  });

  it("keeps a customer to its own view (PERMISSION_DENIED, no dependency called) and lets an admin read anyone's", async () => {
    const { clientFor, scripts } = await setup();
    const error = await failure((await clientFor(bob.id)).getUserOrders({ userId: alice.id }));
    expect(error.code).toBe(Code.PermissionDenied);
    expect(scripts.users.calls.length + scripts.orders.calls.length).toBe(0);
    const admin = await clientFor(newId(), "admin");
    expect((await admin.getUserOrders({ userId: alice.id })).profile?.userId).toBe(alice.id);
  });

  it("needs a token: UNAUTHENTICATED", async () => {
    const { clientFor } = await setup();
    expect((await failure((await clientFor(undefined)).getUserOrders({ userId: alice.id }))).code).toBe(
      Code.Unauthenticated,
    );
  });

  it("answers within the caller's deadline when products hangs", async () => {
    // A generous reserve, so that a busy machine's late timers cannot push
    // the answer past the caller's deadline.
    const reserveMs = 150;
    const { clientFor, scripts } = await setup(
      testSettings({
        reserveMs,
        dependencies: { users: { timeoutMs: 5000 }, orders: { timeoutMs: 5000 }, products: { timeoutMs: 5000 } },
      }),
    );
    scripts.products.always(hang);
    const started = performance.now();
    const view = await (await clientFor(alice.id)).getUserOrders({ userId: alice.id }, { timeoutMs: 500 });
    expect(performance.now() - started).toBeLessThan(500);
    expect(view.degradations.map((d) => [d.dependency, d.code])).toEqual([[Dependency.PRODUCTS, "DEADLINE_EXCEEDED"]]);
    expect(scripts.products.calls[0]!.timeoutMs).toBeLessThanOrEqual(500 - reserveMs);
  });

  it("reports a breaker that is not closed in a response header, also on a failed call", async () => {
    const { clientFor, scripts } = await setup(testSettings({ breaker: { failures: 2, cooldownMs: 5000 } }));
    const client = await clientFor(alice.id);
    const headersOf = async (call: (onHeader: (h: Headers) => void) => Promise<unknown>) => {
      let header = new Headers();
      await call((h) => (header = h)).catch(() => undefined);
      return header;
    };
    expect(
      (await headersOf((onHeader) => client.getUserOrders({ userId: alice.id }, { onHeader }))).has("x-breaker-users"),
    ).toBe(false);
    scripts.users.always(fail(Code.Unavailable));
    for (let i = 0; i < 2; i++) await client.getUserOrders({ userId: alice.id });
    const open = await headersOf((onHeader) => client.getUserOrders({ userId: alice.id }, { onHeader }));
    expect(open.get("x-breaker-users")).toBe("open");
    expect(open.has("x-breaker-orders")).toBe(false);

    scripts.orders.always(fail(Code.Unavailable));
    for (let i = 0; i < 2; i++) await failure(client.getUserOrders({ userId: alice.id }));
    const error = await failure(client.getUserOrders({ userId: alice.id }));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.rawMessage).toMatch(/^orders failed with UNAVAILABLE \(circuit breaker for orders is open/);
    expect(error.metadata.get("x-breaker-orders")).toBe("open");
  });
});
