import { Agent, fetch as undiciFetch } from "undici";

/** A fetch whose https connections trust a CA, and how to close its pooled connections. */
export interface TrustingFetch {
  readonly fetch: typeof globalThis.fetch;
  close(): Promise<void>;
}

/**
 * fetch as a browser or curl that was given the mesh's CA certificate
 * (`--cacert`) would make it, presenting `identity`'s certificate when
 * given one; with no CA, the global fetch (plain HTTP). Node's own fetch
 * cannot be told a CA, hence undici's.
 */
export function trustingFetch(
  ca: string | Buffer | undefined,
  identity?: { cert: string | Buffer; key: string | Buffer },
): TrustingFetch {
  if (ca === undefined) return { fetch: globalThis.fetch, close: async () => undefined };
  const agent = new Agent({ connect: { ca, ...identity } });
  const fetch = ((input: string | URL | Request, init?: RequestInit) =>
    undiciFetch(input as Parameters<typeof undiciFetch>[0], {
      ...(init as Parameters<typeof undiciFetch>[1]),
      dispatcher: agent,
    })) as unknown as typeof globalThis.fetch;
  return { fetch, close: () => agent.close() };
}
