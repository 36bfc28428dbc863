// How far user-orders' projection has got: each source's own head, and a
// wait until the projection reports having applied it. Used by npm start,
// the bench, the experiment and the integration tests.
import { createClient, createTransport, type ClientTlsOptions } from "@shopmesh/sdk";
import { OrdersService } from "@shopmesh/sdk/orders/v1";
import { ProductsService } from "@shopmesh/sdk/products/v1";
import { Consistency, UserOrdersService, type GetUserOrdersResponse } from "@shopmesh/sdk/userorders/v1";
import { UsersService } from "@shopmesh/sdk/users/v1";
import { dependencyNameOf, dependencyNames, type DependencyName } from "@shopmesh/user-orders/dependencies";

/** Where a mesh's services are and how to reach them over TLS (LocalMesh and the meshes built on it). */
export interface MeshAccess {
  address(service: DependencyName | "user-orders"): string;
  /** TLS options for a client of `service`, presenting the certificate of `as`; undefined without TLS. */
  clientTls(service: DependencyName | "user-orders" | undefined, as?: string): ClientTlsOptions | undefined;
}

/** The services whose event streams feed the projection: user-orders' dependencies. */
export type { DependencyName };

/**
 * The newest sequence number of each source's outbox, asked of the source
 * itself: the first message of StreamEvents is a heartbeat carrying it. The
 * streams answer user-orders only, so this asks with user-orders'
 * certificate (mutual TLS).
 */
export async function sourceHeads(mesh: MeshAccess): Promise<Record<DependencyName, bigint>> {
  const services = { users: UsersService, products: ProductsService, orders: OrdersService } as const;
  const head = async (source: DependencyName): Promise<bigint> => {
    const transport = createTransport({ target: mesh.address(source), tls: mesh.clientTls(source, "user-orders") });
    const abort = new AbortController();
    try {
      const client = createClient(services[source] as typeof UsersService, transport);
      for await (const message of client.streamEvents(
        { afterSequence: 0n },
        { signal: abort.signal, timeoutMs: 5000 },
      )) {
        return message.headSequence;
      }
      throw new Error(`${source} ended its event stream without a heartbeat`);
    } catch (error) {
      // Which of the three failed, and where: a refused connection alone does not say.
      throw new Error(`reading ${source}'s stream head at ${mesh.address(source)}: ${String(error)}`, { cause: error });
    } finally {
      abort.abort();
      transport.close();
    }
  };
  const [users, products, orders] = await Promise.all(dependencyNames.map(head));
  return { users: users!, products: products!, orders: orders! };
}

/** What {@link waitForProjection} found. */
export interface ProjectionWait {
  caughtUp: boolean;
  waitedMs: number;
  polls: number;
  /** The last EVENTUAL answer, if any (its stream_lags say where the projection stood). */
  last: GetUserOrdersResponse | undefined;
}

/**
 * Polls an EVENTUAL view of `userId` (with a token allowed to read it) until
 * the projection reports every stream connected and applied up to the head
 * it last heard of, and, when `heads` is given, at least those sequence
 * numbers (a source's own head, so that "caught up" cannot mean "caught up
 * with a stale head"). Gives up after `timeoutMs`.
 */
export async function waitForProjection(options: {
  target: string;
  token: string;
  /** TLS options for user-orders (the mesh's CA); plaintext when omitted. */
  tls?: ClientTlsOptions;
  userId: string;
  timeoutMs: number;
  heads?: Record<DependencyName, bigint>;
  intervalMs?: number;
}): Promise<ProjectionWait> {
  const started = performance.now();
  const transport = createTransport({ target: options.target, token: options.token, tls: options.tls });
  try {
    const views = createClient(UserOrdersService, transport);
    let polls = 0;
    let last: GetUserOrdersResponse | undefined;
    for (;;) {
      polls++;
      const answer = await views
        .getUserOrders({ userId: options.userId, pageSize: 1, consistency: Consistency.EVENTUAL }, { timeoutMs: 2000 })
        .catch(() => undefined);
      last = answer ?? last;
      const caughtUp =
        answer !== undefined &&
        answer.streamLags.length === dependencyNames.length &&
        answer.streamLags.every((lag) => {
          const source = dependencyNameOf(lag.source);
          const atLeast = source && options.heads ? options.heads[source] : 0n;
          return (
            source !== undefined &&
            lag.connected &&
            lag.appliedSequence >= lag.headSequence &&
            lag.appliedSequence >= atLeast
          );
        });
      const waitedMs = performance.now() - started;
      if (caughtUp || waitedMs > options.timeoutMs) return { caughtUp, waitedMs, polls, last };
      await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 10));
    }
  } finally {
    transport.close();
  }
}
