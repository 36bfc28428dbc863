// The client host's process: reads one JSON request a line on stdin
// ({"id", "op", "args"}), runs the operation (several may run at once), and
// writes {"id", "result"} or {"id", "error"} a line on stdout.
import { createInterface } from "node:readline";
import { clientOperations, type ClientContext, type ClientOperations } from "./client-operations.js";

const context = JSON.parse(process.env.SHOPMESH_CLUSTER_CLIENT ?? "") as ClientContext;
const operations = clientOperations(context);
const write = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const { id, op, args } = JSON.parse(line) as { id: number; op: keyof ClientOperations; args: unknown };
  const operation = operations[op] as ((args: unknown) => Promise<unknown>) | undefined;
  if (typeof operation !== "function" || op === "close") {
    write({ id, error: `no operation ${String(op)}` });
    return;
  }
  Promise.resolve()
    .then(() => operation(args))
    .then(
      (result) => write({ id, result }),
      (error: unknown) => write({ id, error: error instanceof Error ? error.message : String(error) }),
    );
});
lines.on("close", () => {
  operations.close();
  // Nothing is in flight once the harness stops asking; a timer or socket left open must not keep the host up.
  process.exit(0);
});
write({ ready: true });
