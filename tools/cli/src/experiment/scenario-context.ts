import type { Dataset } from "./dataset.js";
import type { ExperimentMesh } from "./experiment-mesh.js";
import type { Progress } from "./progress.js";
import { sampleView, type ViewSample } from "./view-load.js";

/** What every scenario works with. */
export interface ScenarioContext {
  mesh: ExperimentMesh;
  dataset: Dataset;
  progress: Progress;
  quick: boolean;
  /** A fresh admin token: GetUserOrders may read any user's view with it. */
  token(): Promise<string>;
}

/**
 * A sender of GetUserOrders calls for the current user-orders process,
 * cycling through the seeded customers.
 */
export async function viewSender(
  context: ScenarioContext,
  timeoutMs: number,
): Promise<(index: number, runStart: number) => Promise<ViewSample>> {
  const client = context.mesh.view(await context.token());
  const users = context.dataset.users;
  let offset = 0;
  return (_index, runStart) => sampleView(client, users[offset++ % users.length]!.id, timeoutMs, runStart);
}

/** A few calls that open the channels of a freshly started user-orders; their results are thrown away. */
export async function warmUp(
  send: (index: number, runStart: number) => Promise<ViewSample>,
  calls = 20,
): Promise<void> {
  const start = performance.now();
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let i = 0; i < calls / 4; i++) await send(i, start);
    }),
  );
}
