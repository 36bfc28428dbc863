import type Database from "better-sqlite3";
import { trackProjection } from "@shopmesh/chassis";
import { dependencyNames, type DependencyName } from "../dependencies.js";
import type { EventSource } from "./event-source.js";
import { ProjectionStore, type ProjectionStoreOptions } from "./projection-store.js";
import { StreamFollower, type FollowerLog, type StreamFollowerOptions, type StreamState } from "./stream-follower.js";

/**
 * user-orders' local copy of what the view needs, kept up to date by one
 * follower per source stream, in its own SQLite database.
 */
export class Projection {
  readonly store: ProjectionStore;
  readonly #followers: { [S in DependencyName]: StreamFollower<S> };

  constructor(
    sqlite: Database.Database,
    source: EventSource,
    log: FollowerLog,
    options: StreamFollowerOptions & ProjectionStoreOptions = {},
  ) {
    this.store = new ProjectionStore(sqlite, { cacheEntries: options.cacheEntries });
    this.#followers = {
      users: new StreamFollower("users", source, this.store, log, options),
      products: new StreamFollower("products", source, this.store, log, options),
      orders: new StreamFollower("orders", source, this.store, log, options),
    };
  }

  /** Starts following every stream, and reports their progress in the process's metrics. */
  start(): void {
    trackProjection(() =>
      this.states().map((state) => ({
        stream: state.stream,
        applied: state.position.sequence,
        head: state.headSequence,
        connected: state.connected,
      })),
    );
    for (const name of dependencyNames) this.#followers[name].start();
  }

  async stop(): Promise<void> {
    trackProjection(undefined);
    await Promise.all(dependencyNames.map((name) => this.#followers[name].stop()));
  }

  state(stream: DependencyName): StreamState {
    return this.#followers[stream].state();
  }

  states(): StreamState[] {
    return dependencyNames.map((name) => this.state(name));
  }
}
