/** Runs `shopmesh experiment`; returns the exit code. */
export async function experiment(_args: string[]): Promise<number> {
  process.stderr.write("shopmesh experiment: not built yet\n");
  return 2;
}
