/**
 * Just enough Prometheus text parsing to difference two scrapes of a histogram (the broker's
 * fsync and produce-request durations, the gateway's records per produce request) and read an
 * average and a bucket-bounded quantile of what happened in between. Read-only HTTP GETs.
 */

export interface HistogramScrape {
  /** [upper bound, cumulative count], ascending, +Inf last. */
  buckets: [number, number][];
  sum: number;
  count: number;
}

function labelsMatch(labels: string, want: Readonly<Record<string, string>>): boolean {
  return Object.entries(want).every(([k, v]) => new RegExp(`(?:^|,)${k}="${v}"`, 'i').test(labels));
}

/** The histogram `name` (series whose labels include `want`, summed) from exposition text. */
export function histogramFrom(text: string, name: string, want: Readonly<Record<string, string>> = {}): HistogramScrape | null {
  const buckets = new Map<number, number>();
  let sum = 0;
  let count = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^(\w+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (m === null || !labelsMatch(m[2] ?? '', want)) continue;
    const value = Number(m[3]);
    if (m[1] === `${name}_bucket`) {
      const le = /le="([^"]+)"/.exec(m[2] ?? '')?.[1];
      if (le === undefined) continue;
      const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
      buckets.set(bound, (buckets.get(bound) ?? 0) + value);
      seen = true;
    } else if (m[1] === `${name}_sum`) sum += value;
    else if (m[1] === `${name}_count`) count += value;
  }
  if (!seen) return null;
  return { buckets: [...buckets].sort((a, b) => a[0] - b[0]), sum, count };
}

export interface HistogramDelta {
  count: number;
  mean: number;
  /** Upper bound of the bucket holding the 99th percentile (Infinity if above the last bound). */
  p99: number;
}

export function histogramDelta(a: HistogramScrape | null, b: HistogramScrape | null): HistogramDelta | null {
  if (a === null || b === null) return null;
  const count = b.count - a.count;
  if (count <= 0) return { count: 0, mean: Number.NaN, p99: Number.NaN };
  const before = new Map(a.buckets);
  const rank = 0.99 * count;
  let p99 = Number.POSITIVE_INFINITY;
  for (const [bound, cum] of b.buckets) {
    if (cum - (before.get(bound) ?? 0) >= rank) {
      p99 = bound;
      break;
    }
  }
  return { count, mean: (b.sum - a.sum) / count, p99 };
}

export async function scrapeText(url: string): Promise<string | null> {
  try {
    const res = await fetch(url);
    return res.ok ? await res.text() : null;
  } catch {
    return null;
  }
}
