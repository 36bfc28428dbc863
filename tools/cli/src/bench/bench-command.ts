/** Runs `shopmesh bench`; returns the exit code. */
export async function bench(_args: string[]): Promise<number> {
  process.stderr.write("shopmesh bench: not built yet\n");
  return 2;
}
