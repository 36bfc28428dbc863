// Password guessing over real gRPC: one client address that keeps failing is
// made to wait, with a delay that grows, while the account's owner signs in
// from another address. The other address is 127.0.0.2 (all of 127/8 is
// loopback on Linux): the owner's client binds its connection to it through
// connect-node's HTTP/2 `localAddress`, as grpc-js cannot choose a local
// address; the server sees it as the call's peer address.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { failure } from "../../../test/support/failure.js";
import { signUpCustomer, TestMesh } from "../../../test/support/mesh.js";

let mesh: TestMesh;
beforeAll(async () => {
  mesh = await TestMesh.start(["users"], {
    users: { PASSWORD_HASH_COST: "1024", SIGN_IN_FAILURES_PER_ACCOUNT_ADDRESS: "3", SIGN_IN_BASE_DELAY: "600ms" },
  });
});
afterAll(() => mesh?.stop());

/** A users client whose connections leave from `localAddress`, over TLS with the mesh's CA. */
function usersFrom(localAddress: string) {
  const ca = mesh.clientTls("users")!.ca;
  return createClient(
    UsersService,
    createGrpcTransport({
      baseUrl: `https://${mesh.address("users")}`,
      nodeOptions: { localAddress, ca } as Record<string, unknown>,
    }),
  );
}

const pushbackMs = (error: { metadata: Headers }) => Number(error.metadata.get("grpc-retry-pushback-ms"));

describe("SignIn throttling", () => {
  it("refuses a guessing address with RESOURCE_EXHAUSTED and a growing wait; the owner elsewhere signs in", async () => {
    const owner = await signUpCustomer(mesh, "guessed");
    const guesser = usersFrom("127.0.0.1");
    const guess = (password: string) => guesser.signIn({ email: owner.email, password });
    for (let i = 0; i < 3; i++) expect((await failure(guess(`wrong ${i}`))).code).toBe(Code.Unauthenticated);

    const refused = await failure(guess("wrong 3"));
    expect(refused.code).toBe(Code.ResourceExhausted);
    expect(refused.rawMessage).toMatch(/try again in \d+ s/);
    const firstWait = pushbackMs(refused);
    expect(firstWait).toBeGreaterThan(0);
    expect(firstWait).toBeLessThanOrEqual(600);
    // Even the right password waits, from that address.
    expect((await failure(guess("correct horse"))).code).toBe(Code.ResourceExhausted);

    // The owner, from another address, is not held back.
    const { user } = await usersFrom("127.0.0.2").signIn({ email: owner.email, password: "correct horse" });
    expect(user!.id).toBe(owner.userId);

    // After the wait, one more wrong guess makes the next wait longer.
    await new Promise((resolve) => setTimeout(resolve, firstWait + 50));
    expect((await failure(guess("wrong 4"))).code).toBe(Code.Unauthenticated);
    const again = await failure(guess("wrong 5"));
    expect(again.code).toBe(Code.ResourceExhausted);
    expect(pushbackMs(again)).toBeGreaterThan(firstWait);
  });
});
