import { createClient, createTransport, type ClientTlsOptions, type GrpcTransport } from "@shopmesh/sdk";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { benchAdminEmail } from "./bench-mesh.js";

/** What the bench seeded: the customer whose data it reads, and the catalog. */
export interface BenchData {
  customer: { userId: string; token: string };
  productIds: string[];
  orderIds: string[];
}

const adjectives = ["Dark", "Light", "Ceramic", "Steel", "Walnut", "Travel", "Cold", "Loose-leaf", "Glass", "Copper"];
const things = [
  "espresso beans",
  "kettle",
  "mug",
  "grinder",
  "filters",
  "milk jug",
  "scale",
  "tamper",
  "bottle",
  "tea tin",
];

/**
 * Seeds a small, realistic data set through the services' own contracts: an
 * admin, one customer, `products` products and `orders` orders of 2-3 lines
 * for the customer.
 */
export async function seedBenchData(
  addresses: { users: string; products: string; orders: string },
  counts: { products: number; orders: number },
  /** TLS options for a client of each service; plaintext when it gives none. */
  tls: (service: "users" | "products" | "orders") => ClientTlsOptions | undefined = () => undefined,
): Promise<BenchData> {
  const transports: GrpcTransport[] = [];
  const transport = (service: "users" | "products" | "orders", token?: string) => {
    const made = createTransport({ target: addresses[service], token, tls: tls(service) });
    transports.push(made);
    return made;
  };
  try {
    const users = createClient(UsersService, transport("users"));
    const admin = await users.signUp({
      email: benchAdminEmail,
      password: "bench-admin-password",
      displayName: "Bench Admin",
    });
    const customer = await users.signUp({
      email: "customer@bench.shopmesh.local",
      password: "bench-customer-password",
      displayName: "Bench Customer",
    });

    const products = createClient(ProductsService, transport("products", admin.session!.accessToken));
    const productIds: string[] = [];
    for (let index = 0; index < counts.products; index++) {
      const { product } = await products.createProduct({
        name: `${adjectives[index % adjectives.length]} ${things[Math.floor(index / adjectives.length) % things.length]} #${index + 1}`,
        description: `Benchmark product number ${index + 1}, described in a sentence of ordinary length.`,
        price: { currencyCode: "EUR", minorUnits: BigInt(500 + ((index * 737) % 9500)) },
      });
      productIds.push(product!.id);
    }

    const orders = createClient(OrdersService, transport("orders", customer.session!.accessToken));
    const orderIds: string[] = [];
    for (let index = 0; index < counts.orders; index++) {
      const lines = 2 + (index % 2);
      const { order } = await orders.createOrder({
        requestId: `bench-order-${index}`,
        items: Array.from({ length: lines }, (_, line) => ({
          productId: productIds[(index * 3 + line * 7) % productIds.length]!,
          quantity: 1 + ((index + line) % 3),
        })),
      });
      orderIds.push(order!.id);
    }
    return { customer: { userId: customer.user!.id, token: customer.session!.accessToken }, productIds, orderIds };
  } finally {
    for (const made of transports) made.close();
  }
}
