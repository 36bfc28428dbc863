import type Database from "better-sqlite3";
import { streamNames, type EventSource, type StreamName } from "./event-source.js";
import { ProjectionStore } from "./projection-store.js";
import { StreamFollower, type FollowerLog, type StreamFollowerOptions, type StreamState } from "./stream-follower.js";

/** A stream's state with what it means for readers. */
export interface StreamLagState extends StreamState {
  /** Whether every event the source had reported has been applied at some point since start. */
  caughtUpOnce: boolean;
}

/**
 * user-orders' local copy of what the view needs, kept up to date by one
 * follower per source stream, in its own SQLite database.
 */
export class Projection {
  readonly store: ProjectionStore;
  readonly #followers: { [S in StreamName]: StreamFollower<S> };
  readonly #caughtUpOnce = new Set<StreamName>();

  constructor(sqlite: Database.Database, source: EventSource, log: FollowerLog, options: StreamFollowerOptions = {}) {
    this.store = new ProjectionStore(sqlite);
    this.#followers = {
      users: new StreamFollower("users", source, this.store, log, options),
      products: new StreamFollower("products", source, this.store, log, options),
      orders: new StreamFollower("orders", source, this.store, log, options),
    };
    for (const name of streamNames) {
      const follower = this.#followers[name];
      follower.onChange(() => {
        const state = follower.state();
        if (state.lastContactAt !== undefined && state.position.sequence >= state.headSequence) this.#caughtUpOnce.add(name);
      });
    }
  }

  start(): void {
    for (const name of streamNames) this.#followers[name].start();
  }

  async stop(): Promise<void> {
    await Promise.all(streamNames.map((name) => this.#followers[name].stop()));
  }

  state(stream: StreamName): StreamLagState {
    return { ...this.#followers[stream].state(), caughtUpOnce: this.#caughtUpOnce.has(stream) };
  }

  states(): StreamLagState[] {
    return streamNames.map((name) => this.state(name));
  }

  /** Calls `listener` whenever any stream applies events or connects or disconnects. */
  onChange(listener: () => void): () => void {
    const removers = streamNames.map((name) => this.#followers[name].onChange(listener));
    return () => removers.forEach((remove) => remove());
  }
}
