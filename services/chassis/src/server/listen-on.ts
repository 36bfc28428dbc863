import type { Server } from "node:net";

/**
 * Starts `server` listening on `host:port` (0: any free port) and resolves
 * with the port it is bound to; rejects with the listen error (a port in
 * use, say).
 */
export async function listenOn(server: Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === "string")
    throw new Error(`unexpected listening address ${String(address)}`);
  return address.port;
}
