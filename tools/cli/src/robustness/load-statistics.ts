// Small figures the load tools report: least-squares slopes, percentiles, counts.

/** Slope of the least-squares line through `points` (y per unit of x); undefined with fewer than two distinct x. */
export function leastSquaresSlope(points: readonly { x: number; y: number }[]): number | undefined {
  const n = points.length;
  if (n < 2) return undefined;
  const meanX = points.reduce((sum, p) => sum + p.x, 0) / n;
  const meanY = points.reduce((sum, p) => sum + p.y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const p of points) {
    sxy += (p.x - meanX) * (p.y - meanY);
    sxx += (p.x - meanX) ** 2;
  }
  return sxx === 0 ? undefined : sxy / sxx;
}

/** The value at quantile `q` (0..1) of `values` by the nearest-rank method; undefined when empty. */
export function quantile(values: readonly number[], q: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1];
}

/** Adds `count` to `key` of a tally. */
export function tally<K extends string>(counts: Partial<Record<K, number>>, key: K, count = 1): void {
  counts[key] = (counts[key] ?? 0) + count;
}

/** Sum of several tallies. */
export function sumTallies<K extends string>(
  tallies: readonly Partial<Record<K, number>>[],
): Partial<Record<K, number>> {
  const total: Partial<Record<K, number>> = {};
  for (const counts of tallies)
    for (const [key, count] of Object.entries(counts) as [K, number][]) tally(total, key, count);
  return total;
}
