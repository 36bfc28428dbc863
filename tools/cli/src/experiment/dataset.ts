import { timestampMs } from "@bufbuild/protobuf/wkt";
import { createClient, createTransport, type GrpcTransport } from "@shopmesh/sdk";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { forEachConcurrent, seededRandom } from "./concurrency.js";
import { adminAccount, type ExperimentMesh } from "./experiment-mesh.js";

/** How much data the experiment seeds. */
export interface DatasetSize {
  users: number;
  products: number;
  ordersPerUser: number;
  linesPerOrder: number;
}

export const fullSize: DatasetSize = { users: 2000, products: 2000, ordersPerUser: 3, linesPerOrder: 4 };
export const quickSize: DatasetSize = { users: 150, products: 200, ordersPerUser: 3, linesPerOrder: 4 };

export interface SeededUser {
  id: string;
  email: string;
  displayName: string;
}
export interface SeededProduct {
  id: string;
  name: string;
  description: string;
  priceMinor: number;
  currency: string;
}
export interface SeededOrder {
  id: string;
  userId: string;
  createTimeMs: number;
  totalMinor: number;
  currency: string;
  lines: { productId: string; quantity: number; unitPriceMinor: number }[];
}

/** What was seeded, as the services stored it: also the monolith's data. */
export interface Dataset {
  size: DatasetSize;
  users: SeededUser[];
  products: SeededProduct[];
  orders: SeededOrder[];
  seconds: number;
}

const adjectives = [
  "Dark",
  "Light",
  "Steel",
  "Walnut",
  "Ceramic",
  "Travel",
  "Compact",
  "Classic",
  "Glass",
  "Copper",
  "Bamboo",
  "Matte",
];
const nouns = [
  "kettle",
  "mug",
  "grinder",
  "scale",
  "tamper",
  "jug",
  "filter",
  "bottle",
  "cup",
  "tray",
  "spoon",
  "canister",
  "dripper",
  "press",
];

/**
 * Seeds a fresh mesh through the services' own contracts: an admin, the
 * catalog (CreateProduct as admin), the customers (SignUp) and each
 * customer's orders (CreateOrder with the customer's token). Every customer's
 * orders name distinct products, so that a view has ordersPerUser *
 * linesPerOrder products to fetch (enough for the fan-out sweep's shards).
 */
export async function seedDataset(
  mesh: ExperimentMesh,
  size: DatasetSize,
  onStep: (done: number, total: number) => void,
): Promise<Dataset> {
  const started = performance.now();
  const random = seededRandom(20130201);
  const transports: GrpcTransport[] = [];
  const transport = (service: "users" | "products", token?: string) => {
    const made = createTransport({ target: mesh.address(service), token, tls: mesh.clientTls(service) });
    transports.push(made);
    return made;
  };
  const total = size.products + size.users * (1 + size.ordersPerUser);
  let done = 0;
  const step = () => onStep(++done, total);
  try {
    const users = createClient(UsersService, transport("users"));
    const admin = await users.signUp(adminAccount);
    const products = createClient(ProductsService, transport("products", admin.session!.accessToken));

    const catalog: SeededProduct[] = new Array(size.products);
    await forEachConcurrent(
      Array.from({ length: size.products }, (_, i) => i),
      8,
      async (i) => {
        const name = `${adjectives[i % adjectives.length]} ${nouns[Math.floor(i / adjectives.length) % nouns.length]} no. ${i + 1}`;
        const priceMinor = 300 + Math.floor(random() * 9700);
        const { product } = await products.createProduct({
          name,
          description: `Seeded product ${i + 1} of ${size.products}.`,
          price: { currencyCode: "EUR", minorUnits: BigInt(priceMinor) },
        });
        catalog[i] = {
          id: product!.id,
          name: product!.name,
          description: product!.description,
          priceMinor,
          currency: "EUR",
        };
        step();
      },
    );

    const customers: SeededUser[] = new Array(size.users);
    const orders: SeededOrder[] = [];
    const ordersTarget = mesh.address("orders");
    // Products per customer are picked up front, from one seeded generator, so that runs repeat.
    const picks = Array.from({ length: size.users }, () =>
      pickDistinct(random, size.products, size.ordersPerUser * size.linesPerOrder),
    );
    await forEachConcurrent(
      Array.from({ length: size.users }, (_, i) => i),
      8,
      async (i) => {
        const email = `customer-${i + 1}@experiment.shopmesh.local`;
        const displayName = `Customer ${i + 1}`;
        const { user, session } = await users.signUp({ email, password: `password-${i + 1}`, displayName });
        customers[i] = { id: user!.id, email: user!.email, displayName: user!.displayName };
        step();
        const ordersTransport = createTransport({
          target: ordersTarget,
          token: session!.accessToken,
          tls: mesh.clientTls("orders"),
        });
        try {
          const client = createClient(OrdersService, ordersTransport);
          for (let o = 0; o < size.ordersPerUser; o++) {
            const items = picks[i]!.slice(o * size.linesPerOrder, (o + 1) * size.linesPerOrder).map((n, line) => ({
              productId: catalog[n]!.id,
              quantity: 1 + ((n + line) % 3),
            }));
            const { order } = await client.createOrder({ requestId: `experiment-${i}-${o}`, items });
            orders.push({
              id: order!.id,
              userId: order!.userId,
              createTimeMs: order!.createTime ? timestampMs(order!.createTime) : 0,
              totalMinor: Number(order!.total?.minorUnits ?? 0n),
              currency: order!.total?.currencyCode ?? "EUR",
              lines: order!.lines.map((l) => ({
                productId: l.productId,
                quantity: l.quantity,
                unitPriceMinor: Number(l.unitPrice?.minorUnits ?? 0n),
              })),
            });
            step();
          }
        } finally {
          ordersTransport.close();
        }
      },
    );
    return { size, users: customers, products: catalog, orders, seconds: (performance.now() - started) / 1000 };
  } finally {
    for (const made of transports) made.close();
  }
}

/** `count` distinct numbers below `below`. */
function pickDistinct(random: () => number, below: number, count: number): number[] {
  const chosen = new Set<number>();
  while (chosen.size < Math.min(count, below)) chosen.add(Math.floor(random() * below));
  return [...chosen];
}

/** A fresh admin token (tokens last 15 minutes; a full run asks for one per scenario). */
export async function adminToken(mesh: ExperimentMesh): Promise<string> {
  const transport = createTransport({ target: mesh.address("users"), tls: mesh.clientTls("users") });
  try {
    const { session } = await createClient(UsersService, transport).signIn({
      email: adminAccount.email,
      password: adminAccount.password,
    });
    return session!.accessToken;
  } finally {
    transport.close();
  }
}
