import { createServer } from "node:net";
import { defaultAdminPort, defaultHttpPort, defaultMetricsPort } from "@shopmesh/chassis";
import { portIsFree } from "@shopmesh/cli";

/**
 * A port that was free a moment ago on 127.0.0.1: bound to port 0, read and
 * closed, for a program that takes its port as a number (a service started
 * again on the port a test gave it, nats-server, Prometheus).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port bound")),
      );
    });
  });
}

/**
 * A first port for `npm start`'s four services (SHOPMESH_PORT_BASE) where
 * every port they default to is free: the four gRPC ports and each one's
 * admin, metrics and HTTP ports, and the console's.
 */
export async function freePortBase(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 21100 + Math.floor(Math.random() * 10000);
    const ports = [0, 1, 2, 3].flatMap((i) => [
      base + i,
      defaultAdminPort(base + i),
      defaultMetricsPort(base + i),
      defaultHttpPort(base + i),
    ]);
    // npm start's console, 1 below the first admin listener.
    ports.push(defaultAdminPort(base) - 1);
    if ((await Promise.all(ports.map((port) => portIsFree(port)))).every(Boolean)) return base;
  }
  throw new Error("no four free ports in a row");
}
