// Another team's Python service calls the mesh with grpcio and the CA
// certificate alone: clients/python/shopmesh_client.py, run by a real Python
// against a real mesh over TLS, its messages read from the FileDescriptorSet
// that buf builds from proto/ here.
import { execFile, spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminToken, TestMesh } from "../support/mesh.js";
import { requirePythonGrpcio } from "../support/python-grpcio.js";

const root = resolve(import.meta.dirname, "../..");
const client = join(root, "clients/python/shopmesh_client.py");
const python = requirePythonGrpcio("the Python grpcio client test");

interface Step {
  step: string;
  ok: boolean;
  summary?: string;
  code?: string;
  message?: string;
  [fact: string]: unknown;
}

interface Run {
  exitCode: number;
  steps: Map<string, Step>;
  stderr: string;
}

/** Runs the client with `args` (after --json) and reads its JSON lines. */
function runClient(args: string[]): Promise<Run> {
  return new Promise((done, fail) => {
    execFile(
      python.path!,
      [client, "--json", ...args],
      { cwd: root, timeout: 90_000, maxBuffer: 1 << 20 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== "number") {
          fail(new Error(`the Python client did not run to its end (${error.message}):\n${stdout}\n${stderr}`));
          return;
        }
        try {
          const steps = new Map<string, Step>();
          for (const line of stdout.split("\n").filter(Boolean)) {
            const step = JSON.parse(line) as Step;
            steps.set(step.step, step);
          }
          done({ exitCode: typeof error?.code === "number" ? error.code : 0, steps, stderr });
        } catch (parse) {
          fail(
            new Error(`the Python client printed a line that is not JSON (${String(parse)}):\n${stdout}\n${stderr}`),
          );
        }
      },
    );
  });
}

describe.skipIf(python.missing)("a Python grpcio client with the CA certificate", () => {
  let mesh: TestMesh;
  let descriptors: string;
  let addresses: string[];
  let productId: string;

  beforeAll(async () => {
    mesh = await TestMesh.start(["users", "products", "orders", "user-orders"]);
    // The contracts as another team gets them: a FileDescriptorSet from buf, imports included.
    descriptors = join(mesh.dataDir, "shopmesh.binpb");
    const built = spawnSync(
      join(root, "node_modules/.bin/buf"),
      ["build", "--as-file-descriptor-set", "-o", descriptors],
      { cwd: root, encoding: "utf8", timeout: 120_000 },
    );
    expect(built.status, built.stderr).toBe(0);
    const admin = mesh.client("products", await adminToken(mesh));
    productId = (await admin.createProduct({ name: "Python mug", price: { currencyCode: "EUR", minorUnits: 1250n } }))
      .product!.id;
    addresses = ["users", "products", "orders", "user-orders"].flatMap((service) => [
      `--${service}`,
      mesh.address(service as "users"),
    ]);
  });

  afterAll(async () => {
    await mesh?.stop();
  });

  it("lists, signs up and in, orders with its token and reads the order back; bad input, no token, the wrong server and plaintext are refused", async () => {
    const caFile = mesh.certificates!.caFile;
    const run = await runClient(["--descriptors", descriptors, "--ca", caFile, ...addresses]);
    const step = (name: string) => {
      const found = run.steps.get(name);
      expect(
        found,
        `step ${name} in:\n${[...run.steps.values()].map((s) => JSON.stringify(s)).join("\n")}\n${run.stderr}`,
      ).toBeDefined();
      return found!;
    };

    expect(step("list-products")).toMatchObject({ ok: true, count: 1, first_product_id: productId });
    const userId = step("sign-up").user_id as string;
    expect(step("sign-up").ok).toBe(true);
    expect(step("sign-in")).toMatchObject({ ok: true });
    expect(step("sign-in").token_length).toBeGreaterThan(100);
    const orderId = step("create-order").order_id as string;
    expect(step("create-order")).toMatchObject({ ok: true, lines: 1 });
    expect(step("get-user-orders")).toMatchObject({
      ok: true,
      orders: 1,
      product_names: ["Python mug"],
      degradations: 0,
    });
    expect(step("invalid-argument")).toMatchObject({ ok: true, code: "INVALID_ARGUMENT" });
    expect(step("invalid-argument").message).toMatch(/^items\[0\]\.quantity: must be from 1 to 1000$/);
    expect(step("no-token")).toMatchObject({ ok: true, code: "UNAUTHENTICATED" });
    expect(step("wrong-service")).toMatchObject({ ok: true, code: "UNAVAILABLE" });
    expect(step("wrong-service").message).toContain("products");
    expect(step("plaintext")).toMatchObject({ ok: true, code: "UNAVAILABLE" });
    expect(step("summary")).toEqual({ step: "summary", ok: true, steps: 9, failed: 0 });
    expect(run.exitCode).toBe(0);

    // What the Python client did is there for the mesh's own clients too.
    const { orders } = await mesh.client("orders", await adminToken(mesh)).listOrders({ userId });
    expect(orders.map((order) => [order.id, order.lines[0]?.productId, order.lines[0]?.quantity])).toEqual([
      [orderId, productId, 2],
    ]);
  });

  it("exits 1 and names the failure when a call does not go as expected", async () => {
    // users' address given as products': its certificate does not name products.
    const swapped = addresses.map((value, index) =>
      addresses[index - 1] === "--products" ? mesh.address("users") : value,
    );
    const run = await runClient(["--descriptors", descriptors, "--ca", mesh.certificates!.caFile, ...swapped]);
    expect(run.exitCode).toBe(1);
    expect(run.steps.get("unexpected-error")).toMatchObject({ ok: false, code: "UNAVAILABLE" });
    expect(run.steps.get("summary")).toMatchObject({ ok: false, failed: 1 });
    expect(run.steps.has("list-products")).toBe(false);
  });
});
