/** `shopmesh soak` and `shopmesh overload`, loaded only when asked for. */
export async function run(command: "soak" | "overload", args: string[]): Promise<number> {
  if (command === "soak") return (await import("./soak-command.js")).soak(args);
  return (await import("./overload-command.js")).overload(args);
}
