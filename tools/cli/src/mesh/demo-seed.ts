import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConnectError, Code } from "@connectrpc/connect";
import { createClient, createTransport, type ClientTlsOptions } from "@shopmesh/sdk";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";

/** Demo accounts a local mesh starts with. */
export const demoAccounts = {
  admin: { email: "admin@shopmesh.local", password: "admin-password", displayName: "Ada Admin" },
  alice: { email: "alice@shopmesh.local", password: "alice-password", displayName: "Alice Example" },
  bob: { email: "bob@shopmesh.local", password: "bob-password", displayName: "Bob Example" },
} as const;

const catalog: [name: string, description: string, euroCents: number][] = [
  ["Espresso beans 1 kg", "Dark roast, chocolate and walnut.", 2490],
  ["Pour-over kettle", "Gooseneck, 1 litre, stovetop.", 4900],
  ["Ceramic mug", "350 ml, dishwasher safe.", 1200],
  ["Hand grinder", "Conical steel burrs, 40 settings.", 8900],
  ["Paper filters (100)", "Size 02, unbleached.", 650],
  ["Milk jug", "Stainless steel, 600 ml.", 1850],
  ["Digital scale", "0.1 g resolution, with timer.", 3200],
  ["Tamper", "58 mm, walnut handle.", 2700],
  ["Cold brew bottle", "1 litre, with mesh filter.", 2300],
  ["Cleaning tablets", "Sixty tablets for espresso machines.", 990],
  ["Travel cup", "Vacuum insulated, 300 ml.", 2150],
  ["Tea sampler", "Twelve loose-leaf teas.", 1990],
];

/** What a seeded mesh knows: who the demo users are. */
export interface SeedRecord {
  seededAt: string;
  accounts: Record<keyof typeof demoAccounts, { email: string; password: string; userId: string }>;
  productIds: string[];
}

/**
 * Fills a fresh local mesh with a demo catalog, demo users (one admin) and a
 * few orders, through the services' own contracts, and records that it did in
 * `<dataDir>/seed.json` so the next start does not seed twice.
 */
export async function seedOnce(
  dataDir: string,
  targets: { users: string; products: string; orders: string },
  /** TLS options for a client of each service; plaintext when undefined. */
  tls: (service: "users" | "products" | "orders") => ClientTlsOptions | undefined = () => undefined,
): Promise<{ seeded: boolean; record: SeedRecord }> {
  const marker = join(dataDir, "seed.json");
  if (existsSync(marker)) return { seeded: false, record: JSON.parse(readFileSync(marker, "utf8")) as SeedRecord };

  const usersTransport = createTransport({ target: targets.users, tls: tls("users") });
  const transports = [usersTransport];
  try {
    const users = createClient(UsersService, usersTransport);
    const account = async (who: keyof typeof demoAccounts) => {
      const { email, password, displayName } = demoAccounts[who];
      try {
        return await users.signUp({ email, password, displayName });
      } catch (error) {
        if (ConnectError.from(error).code !== Code.AlreadyExists) throw error;
        return await users.signIn({ email, password });
      }
    };
    const admin = await account("admin");
    const alice = await account("alice");
    const bob = await account("bob");

    const productsTransport = createTransport({
      target: targets.products,
      token: admin.session!.accessToken,
      tls: tls("products"),
    });
    transports.push(productsTransport);
    const products = createClient(ProductsService, productsTransport);
    const existing = await products.listProducts({ pageSize: 100 });
    const productIds = existing.products.map((p) => p.id);
    if (productIds.length === 0) {
      for (const [name, description, cents] of catalog) {
        const { product } = await products.createProduct({
          name,
          description,
          price: { currencyCode: "EUR", minorUnits: BigInt(cents) },
        });
        productIds.push(product!.id);
      }
    }

    const placeOrders = async (token: string, who: string, picks: number[][]) => {
      const transport = createTransport({ target: targets.orders, token, tls: tls("orders") });
      transports.push(transport);
      const orders = createClient(OrdersService, transport);
      for (const [index, pick] of picks.entries()) {
        await orders.createOrder({
          // Fixed request ids make seeding safe to repeat after a crash.
          requestId: `seed-${who}-${index}`,
          items: pick.map((n, i) => ({ productId: productIds[n % productIds.length]!, quantity: 1 + (i % 2) })),
        });
      }
    };
    await placeOrders(alice.session!.accessToken, "alice", [[0, 2], [1], [4, 5, 6]]);
    await placeOrders(bob.session!.accessToken, "bob", [[3], [7, 8]]);

    const record: SeedRecord = {
      seededAt: new Date().toISOString(),
      accounts: {
        admin: { ...pick(demoAccounts.admin), userId: admin.user!.id },
        alice: { ...pick(demoAccounts.alice), userId: alice.user!.id },
        bob: { ...pick(demoAccounts.bob), userId: bob.user!.id },
      },
      productIds,
    };
    writeFileSync(marker, `${JSON.stringify(record, null, 2)}\n`);
    return { seeded: true, record };
  } finally {
    for (const transport of transports) transport.close();
  }
}

function pick(account: { email: string; password: string }) {
  return { email: account.email, password: account.password };
}
