import { spawnService, type ServiceProcess, type SpawnServiceOptions } from "@shopmesh/cli";

/**
 * Starts a service that must refuse to start and returns why it did not.
 * One that starts after all is stopped before the test fails, so that the
 * failing test leaves no process behind.
 */
export async function refusedStart(options: SpawnServiceOptions): Promise<Error> {
  let started: ServiceProcess;
  try {
    started = await spawnService(options);
  } catch (error) {
    if (error instanceof Error) return error;
    throw error;
  }
  await started.stop();
  throw new Error("the service started, but should have refused to");
}
