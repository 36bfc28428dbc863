import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { type Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@shopmesh/sdk/health/v1";

export { ServingStatus };

type Listener = (status: ServingStatus) => void;

/**
 * The serving status of a server and of each service it hosts, served as the
 * standard `grpc.health.v1.Health` contract. The empty name stands for the
 * server as a whole.
 */
export class HealthRegistry {
  readonly #statuses = new Map<string, ServingStatus>();
  /** Each Watch stream open: its service, what it is told of a change, and what ends it. */
  readonly #watchers = new Set<{ service: string; listener: Listener; stop: () => void }>();
  #closed = false;

  constructor(services: Iterable<string>, initial = ServingStatus.SERVING) {
    this.#statuses.set("", initial);
    for (const service of services) this.#statuses.set(service, initial);
  }

  /** Current status of a service, or undefined when it is not hosted here. */
  get(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  /** Sets one service's status and tells its watchers. */
  set(service: string, status: ServingStatus): void {
    if (this.#statuses.get(service) === status) return;
    this.#statuses.set(service, status);
    for (const entry of this.#watchers) if (entry.service === service) entry.listener(status);
  }

  /** Sets every service's status, the server's included. */
  setAll(status: ServingStatus): void {
    for (const service of [...this.#statuses.keys()]) this.set(service, status);
  }

  /** Ends every Watch stream, so that a draining server is not kept open by them. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#watchers) entry.stop();
  }

  /** The Health service implementation, ready to host. */
  readonly service: ServiceImpl<typeof Health> = {
    check: (request) => {
      const status = this.#statuses.get(request.service);
      if (status === undefined) {
        throw new ConnectError(`unknown service "${request.service}"`, Code.NotFound);
      }
      return { status };
    },
    watch: (request, context) => this.#watch(request.service, context),
  };

  async *#watch(service: string, context: HandlerContext): AsyncGenerator<{ status: ServingStatus }> {
    const pending: ServingStatus[] = [this.#statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN];
    let wake: (() => void) | undefined;
    const entry = {
      service,
      listener: (status: ServingStatus) => {
        pending.push(status);
        wake?.();
      },
      stop: () => wake?.(),
    };
    // Each stream listens to its own call's signal only: one listener per stream on a signal
    // every stream shares would pass Node's limit of ten, and warn of a leak.
    context.signal.addEventListener("abort", entry.stop);
    this.#watchers.add(entry);
    try {
      for (;;) {
        const next = pending.shift();
        if (next !== undefined) {
          yield { status: next };
          continue;
        }
        if (context.signal.aborted || this.#closed) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      this.#watchers.delete(entry);
      context.signal.removeEventListener("abort", entry.stop);
    }
  }
}
