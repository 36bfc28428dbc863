import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { Role } from "@shopmesh/sdk/users/v1";
import { failure } from "../../../test/support/failure.js";
import { adminToken, signUpCustomer, TestMesh } from "../../../test/support/mesh.js";

let mesh: TestMesh;
beforeAll(async () => {
  mesh = await TestMesh.start(["users"]);
});
afterAll(() => mesh?.stop());

describe("SignUp", () => {
  it("creates a customer with a normalised email and signs it in", async () => {
    const { user, session } = await mesh.client("users").signUp({
      email: "  Mixed.Case@Example.COM ",
      password: "long enough",
      displayName: " Mia ",
    });
    expect(user).toMatchObject({ email: "mixed.case@example.com", displayName: "Mia", role: Role.CUSTOMER });
    expect(user!.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(session!.accessToken.split(".")).toHaveLength(3);
    expect(Number(session!.expireTime!.seconds) * 1000).toBeGreaterThan(Date.now());
    const again = await mesh.client("users", session!.accessToken).getUser({ userId: user!.id });
    expect(again.user!.email).toBe("mixed.case@example.com");
  });

  it("refuses a second account for the same email, whatever its case: ALREADY_EXISTS", async () => {
    const users = mesh.client("users");
    await users.signUp({ email: "twice@example.com", password: "password1", displayName: "One" });
    const error = await failure(
      users.signUp({ email: "TWICE@example.com ", password: "password2", displayName: "Two" }),
    );
    expect(error.code).toBe(Code.AlreadyExists);
  });

  it.each([
    ["email", { email: "", password: "password1", displayName: "x" }],
    ["email", { email: "not-an-email", password: "password1", displayName: "x" }],
    ["password", { email: "p1@example.com", password: "short", displayName: "x" }],
    ["password", { email: "p2@example.com", password: "x".repeat(129), displayName: "x" }],
    ["display_name", { email: "d1@example.com", password: "password1", displayName: "   " }],
    ["display_name", { email: "d2@example.com", password: "password1", displayName: "x".repeat(101) }],
  ])("names the bad field %s: INVALID_ARGUMENT", async (field, request) => {
    const error = await failure(mesh.client("users").signUp(request));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage.startsWith(`${field}:`)).toBe(true);
  });

  it("gives the admin role only to configured admin emails", async () => {
    const token = await adminToken(mesh);
    const customer = await signUpCustomer(mesh);
    const { user } = await mesh.client("users", token).getUser({ userId: customer.userId });
    expect(user!.role).toBe(Role.CUSTOMER);
  });
});

describe("SignIn", () => {
  it("signs in with the right password, with any email case", async () => {
    const customer = await signUpCustomer(mesh, "signin");
    const { user, session } = await mesh
      .client("users")
      .signIn({ email: customer.email.toUpperCase(), password: "correct horse" });
    expect(user!.id).toBe(customer.userId);
    expect(session!.accessToken).not.toBe("");
  });

  it("answers a wrong password and an unknown email alike: UNAUTHENTICATED", async () => {
    const customer = await signUpCustomer(mesh, "wrong");
    const users = mesh.client("users");
    const wrong = await failure(users.signIn({ email: customer.email, password: "wrong password" }));
    const unknown = await failure(users.signIn({ email: "nobody@example.com", password: "wrong password" }));
    expect(wrong.code).toBe(Code.Unauthenticated);
    expect(unknown.code).toBe(Code.Unauthenticated);
    expect(unknown.rawMessage).toBe(wrong.rawMessage);
  });

  it("names a missing password: INVALID_ARGUMENT", async () => {
    const error = await failure(mesh.client("users").signIn({ email: "a@example.com", password: "" }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toMatch(/^password:/);
  });
});

describe("GetUser", () => {
  it("needs a token: UNAUTHENTICATED without one or with a forged one", async () => {
    const customer = await signUpCustomer(mesh);
    expect((await failure(mesh.client("users").getUser({ userId: customer.userId }))).code).toBe(Code.Unauthenticated);
    const [header, payload] = customer.token.split(".");
    const forged = `${header}.${payload}.${Buffer.from("not the signature").toString("base64url")}`;
    expect((await failure(mesh.client("users", forged).getUser({ userId: customer.userId }))).code).toBe(
      Code.Unauthenticated,
    );
    expect((await failure(mesh.client("users", "garbage").getUser({ userId: customer.userId }))).code).toBe(
      Code.Unauthenticated,
    );
  });

  it("lets a customer read itself but not another customer: PERMISSION_DENIED", async () => {
    const alice = await signUpCustomer(mesh, "alice");
    const bob = await signUpCustomer(mesh, "bob");
    const asAlice = mesh.client("users", alice.token);
    expect((await asAlice.getUser({ userId: alice.userId })).user!.id).toBe(alice.userId);
    expect((await failure(asAlice.getUser({ userId: bob.userId }))).code).toBe(Code.PermissionDenied);
  });

  it("lets an admin read anyone, and says NOT_FOUND for an unknown id", async () => {
    const admin = mesh.client("users", await adminToken(mesh));
    const bob = await signUpCustomer(mesh, "bob");
    expect((await admin.getUser({ userId: bob.userId })).user!.id).toBe(bob.userId);
    const missing = await failure(admin.getUser({ userId: "01900000-0000-7000-8000-000000000000" }));
    expect(missing.code).toBe(Code.NotFound);
  });

  it("names a malformed user_id: INVALID_ARGUMENT", async () => {
    const customer = await signUpCustomer(mesh);
    for (const userId of ["", "not-a-uuid"]) {
      const error = await failure(mesh.client("users", customer.token).getUser({ userId }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(/^user_id:/);
    }
  });
});

describe("BatchGetUsers", () => {
  it("returns the users found in request order and lists the missing ids", async () => {
    const admin = mesh.client("users", await adminToken(mesh));
    const a = await signUpCustomer(mesh);
    const b = await signUpCustomer(mesh);
    const missing = "01900000-0000-7000-8000-000000000001";
    const response = await admin.batchGetUsers({ userIds: [b.userId, missing, a.userId, b.userId] });
    expect(response.users.map((u) => u.id)).toEqual([b.userId, a.userId]);
    expect(response.missingUserIds).toEqual([missing]);
  });

  it("is for admins only: PERMISSION_DENIED for a customer", async () => {
    const customer = await signUpCustomer(mesh);
    const error = await failure(mesh.client("users", customer.token).batchGetUsers({ userIds: [customer.userId] }));
    expect(error.code).toBe(Code.PermissionDenied);
  });

  it("names bad user_ids: empty, too many or malformed: INVALID_ARGUMENT", async () => {
    const admin = mesh.client("users", await adminToken(mesh));
    const tooMany = Array.from({ length: 101 }, (_, i) => `01900000-0000-7000-8000-${String(i).padStart(12, "0")}`);
    for (const userIds of [[], tooMany, ["nope"]]) {
      const error = await failure(admin.batchGetUsers({ userIds }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(/^user_ids/);
    }
  });
});

describe("RotateSigningKey", () => {
  it("is for admins only: PERMISSION_DENIED for a customer, UNAUTHENTICATED without a token", async () => {
    const customer = await signUpCustomer(mesh, "rotate");
    expect((await failure(mesh.client("users", customer.token).rotateSigningKey({}))).code).toBe(Code.PermissionDenied);
    expect((await failure(mesh.client("users").rotateSigningKey({}))).code).toBe(Code.Unauthenticated);
  });
});

describe("input hygiene", () => {
  it.each([
    ["email", { email: "adm\u200Bin@example.com", password: "password1", displayName: "x" }],
    ["email", { email: "rtl\u202E@example.com", password: "password1", displayName: "x" }],
    ["display_name", { email: "nul@example.com", password: "password1", displayName: "Nu\u0000l" }],
    ["display_name", { email: "bel@example.com", password: "password1", displayName: "Bell\u0007" }],
    ["display_name", { email: "bidi@example.com", password: "password1", displayName: "Eve\u202Egnp.exe" }],
    ["display_name", { email: "zw@example.com", password: "password1", displayName: "Zero\u200Bwidth" }],
    ["display_name", { email: "ls@example.com", password: "password1", displayName: "Line\u2028separator" }],
    ["display_name", { email: "pu@example.com", password: "password1", displayName: "Private\uE000use" }],
    ["display_name", { email: "nc@example.com", password: "password1", displayName: "Non\uFFFFcharacter" }],
    ["password", { email: "blank@example.com", password: "          ", displayName: "Blank" }],
  ])(
    "refuses control and format characters, and a blank password, naming %s: INVALID_ARGUMENT",
    async (field, request) => {
      const error = await failure(mesh.client("users").signUp(request));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage.startsWith(`${field}:`)).toBe(true);
    },
  );

  it("makes one account of look-alike emails: fullwidth letters, ligatures and case folding", async () => {
    const users = mesh.client("users");
    const { user } = await users.signUp({
      email: "\uFF41\uFF44\uFF4D\uFF49\uFF4E-look@example.com",
      password: "password1",
      displayName: "Fullwidth",
    });
    expect(user!.email).toBe("admin-look@example.com");
    const again = await failure(
      users.signUp({ email: "ADMIN-LOOK@example.com", password: "password2", displayName: "Plain" }),
    );
    expect(again.code).toBe(Code.AlreadyExists);
    await users.signUp({ email: "stra\u00DFe@example.com", password: "password1", displayName: "Sharp s" });
    const folded = await failure(
      users.signUp({ email: "STRASSE@example.com", password: "password2", displayName: "Double s" }),
    );
    expect(folded.code).toBe(Code.AlreadyExists);
    const { user: ligature } = await users.signUp({
      email: "\uFB01le@example.com",
      password: "password1",
      displayName: "Ligature",
    });
    expect(ligature!.email).toBe("file@example.com");
    const signedIn = await users.signIn({ email: "FILE@example.com", password: "password1" });
    expect(signedIn.user!.id).toBe(ligature!.id);
  });
});
