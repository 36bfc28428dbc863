/** One case of one server and client pair. */
export interface Row {
  server: string;
  client: string;
  case: string;
  ok: boolean;
  detail?: string;
}

/**
 * The rows as a plain-text table, one line per case, followed by a line per
 * server and client pair with how many of its cases passed.
 */
export function formatRows(rows: readonly Row[]): string {
  const header = ["server", "client", "case", "result"];
  const cells = rows.map((row) => [
    row.server,
    row.client,
    row.case,
    row.ok ? "pass" : `FAIL${row.detail ? ` (${row.detail})` : ""}`,
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...cells.map((line) => (column < 3 ? line[column]!.length : 0))),
  );
  const line = (values: string[]) =>
    values
      .map((value, column) => (column < 3 ? value.padEnd(widths[column]!) : value))
      .join("  ")
      .trimEnd();
  const pairs = new Map<string, { passed: number; total: number }>();
  for (const row of rows) {
    const key = `${row.server} <- ${row.client}`;
    const pair = pairs.get(key) ?? { passed: 0, total: 0 };
    pair.total++;
    if (row.ok) pair.passed++;
    pairs.set(key, pair);
  }
  const summary = [...pairs].map(([key, pair]) => `${pair.passed}/${pair.total} passed: ${key}`);
  return [line(header), ...cells.map(line), "", ...summary].join("\n");
}
