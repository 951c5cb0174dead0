/**
 * Reads the broker's Prometheus /metrics: a tiny text-format parser plus the few derived figures
 * the benchmark wants (per-topic log end offsets, and histogram quantiles over a phase, computed
 * from the difference of two scrapes the way PromQL's histogram_quantile interpolates).
 */
import http from 'node:http';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`GET ${url}: HTTP ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

export async function scrape(metricsPort: number): Promise<Sample[]> {
  return parseMetrics(await fetchText(`http://127.0.0.1:${metricsPort}/metrics`));
}

function matches(s: Sample, name: string, labels: Record<string, string>): boolean {
  if (s.name !== name) return false;
  for (const [k, v] of Object.entries(labels)) if (s.labels[k] !== v) return false;
  return true;
}

export function sumOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => matches(s, name, labels)).reduce((a, s) => a + s.value, 0);
}

/** Quantile `q` of a histogram's observations between scrapes `before` and `after`; NaN if none. */
export function histogramQuantile(before: readonly Sample[], after: readonly Sample[], name: string, labels: Record<string, string>, q: number): number {
  const buckets = after
    .filter((s) => matches(s, `${name}_bucket`, labels))
    .map((s) => {
      const le = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le);
      const prev = before.find((b) => matches(b, `${name}_bucket`, { ...labels, le: s.labels.le }));
      return { le, count: s.value - (prev?.value ?? 0) };
    })
    .sort((a, b) => a.le - b.le);
  const total = buckets.at(-1)?.count ?? 0;
  if (total <= 0) return Number.NaN;
  const rank = q * total;
  let lowerLe = 0;
  let lowerCount = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (!Number.isFinite(b.le)) return lowerLe; // beyond the last finite bucket: its bound is all we know
      return lowerLe + ((b.le - lowerLe) * (rank - lowerCount)) / Math.max(b.count - lowerCount, 1);
    }
    lowerLe = b.le;
    lowerCount = b.count;
  }
  return lowerLe;
}

/** What changed in the broker over one phase. */
export interface PhaseMetrics {
  produceRequests: number;
  fetchRequests: number;
  fsyncRounds: number;
  fsyncFiles: number;
  /** Broker-side Produce request duration, interpolated from histogram buckets. */
  produceP50Ms: number;
  produceP99Ms: number;
  fsyncP50Ms: number;
  fsyncP99Ms: number;
  protocolErrors: number;
  produceErrors: number;
  offsetCommitRequests: number;
  offsetCommitP50Ms: number;
  offsetCommitP99Ms: number;
  /** Broker-side Fetch duration (includes the long-poll wait), interpolated from histogram buckets. */
  fetchP50Ms: number;
  fetchP99Ms: number;
}

export function phaseMetrics(before: readonly Sample[], after: readonly Sample[]): PhaseMetrics {
  const delta = (name: string, labels: Record<string, string> = {}) => sumOf(after, name, labels) - sumOf(before, name, labels);
  const reqDur = 'spillway_broker_request_duration_seconds';
  const fsyncDur = 'spillway_broker_fsync_duration_seconds';
  return {
    produceRequests: delta(`${reqDur}_count`, { api: 'Produce' }),
    fetchRequests: delta(`${reqDur}_count`, { api: 'Fetch' }),
    fsyncRounds: delta(`${fsyncDur}_count`),
    fsyncFiles: delta('spillway_broker_fsync_files_total'),
    produceP50Ms: histogramQuantile(before, after, reqDur, { api: 'Produce' }, 0.5) * 1000,
    produceP99Ms: histogramQuantile(before, after, reqDur, { api: 'Produce' }, 0.99) * 1000,
    fsyncP50Ms: histogramQuantile(before, after, fsyncDur, {}, 0.5) * 1000,
    fsyncP99Ms: histogramQuantile(before, after, fsyncDur, {}, 0.99) * 1000,
    protocolErrors: delta('spillway_broker_protocol_errors_total'),
    produceErrors: delta('spillway_broker_produce_errors_total'),
    offsetCommitRequests: delta(`${reqDur}_count`, { api: 'OffsetCommit' }),
    offsetCommitP50Ms: histogramQuantile(before, after, reqDur, { api: 'OffsetCommit' }, 0.5) * 1000,
    offsetCommitP99Ms: histogramQuantile(before, after, reqDur, { api: 'OffsetCommit' }, 0.99) * 1000,
    fetchP50Ms: histogramQuantile(before, after, reqDur, { api: 'Fetch' }, 0.5) * 1000,
    fetchP99Ms: histogramQuantile(before, after, reqDur, { api: 'Fetch' }, 0.99) * 1000,
  };
}
