import type { ClientSession } from "./client-session.js";
import type { Cluster } from "./cluster.js";

/** What a run holds that an interruption must take down; filled in as the run gets it. */
export interface HeldCluster {
  /** The cluster, from the moment its making begins (its network exists before it resolves). */
  creating?: Promise<Cluster>;
  client?: ClientSession;
}

/**
 * On SIGINT or SIGTERM, closes the client session and removes the cluster
 * (waiting for one still being made), then exits 130 or 143. Returns the
 * function that stops listening, for the run's own end.
 */
export function tearDownOnSignal(held: HeldCluster, progress: (line: string) => void = () => {}): () => void {
  const interrupted = (signal: NodeJS.Signals) => {
    progress(`${signal}: tearing the cluster down`);
    void (async () => {
      await held.client?.close();
      await (await held.creating?.catch(() => undefined))?.down();
      process.exit(signal === "SIGINT" ? 130 : 143);
    })();
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  return () => {
    process.removeListener("SIGINT", interrupted);
    process.removeListener("SIGTERM", interrupted);
  };
}
