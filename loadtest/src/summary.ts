/**
 * The end-of-test summary in k6's `handleSummary(data)` shape (metrics with type, contains,
 * values and threshold outcomes; root_group checks; options; state), and a compact text form of
 * it for the terminal.
 */
import type { Registry, Sink } from './k6/metrics.ts';
import type { CheckRecord } from './k6/runtime.ts';
import type { ThresholdResult } from './thresholds.ts';

export interface SummaryMetric {
  type: string;
  contains: string;
  values: Record<string, number>;
  thresholds?: Record<string, { ok: boolean }>;
}

export interface SummaryData {
  root_group: { name: string; path: string; id: string; groups: unknown[]; checks: { name: string; path: string; id: string; passes: number; fails: number }[] };
  options: { summaryTrendStats: string[]; summaryTimeUnit: string; noColor: boolean };
  state: { isStdOutTTY: boolean; isStdErrTTY: boolean; testRunDurationMs: number };
  metrics: Record<string, SummaryMetric>;
}

export const DEFAULT_TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)'];

export function buildSummary(opts: {
  registry: Registry;
  checks: Iterable<CheckRecord>;
  results: readonly ThresholdResult[];
  trendStats: readonly string[];
  durationMs: number;
  tty: { stdout: boolean; stderr: boolean };
}): SummaryData {
  const durationS = opts.durationMs / 1000;
  const metrics: Record<string, SummaryMetric> = {};
  const add = (name: string, type: string, contains: string, sink: Sink) => {
    // Like k6, a metric that got no sample is left out (unless a threshold names it).
    const values = sink.values(opts.trendStats, durationS);
    metrics[name] = { type, contains, values };
  };
  for (const m of opts.registry.metrics.values()) {
    const touched = hasSamples(m.sink) || opts.results.some((r) => r.threshold.metric === m.name);
    if (touched) add(m.name, m.type, m.contains, m.sink);
    for (const sub of m.submetrics) add(sub.name, m.type, m.contains, sub.sink);
  }
  for (const r of opts.results) {
    const entry = metrics[r.threshold.key];
    if (!entry) continue;
    entry.thresholds ??= {};
    entry.thresholds[r.threshold.source] = { ok: r.ok };
  }
  return {
    root_group: {
      name: '',
      path: '',
      id: 'd41d8cd98f00b204e9800998ecf8427e',
      groups: [],
      checks: [...opts.checks].map((c, i) => ({ name: c.name, path: c.path, id: String(i), passes: c.passes, fails: c.fails })),
    },
    options: { summaryTrendStats: [...opts.trendStats], summaryTimeUnit: '', noColor: false },
    state: { isStdOutTTY: opts.tty.stdout, isStdErrTTY: opts.tty.stderr, testRunDurationMs: opts.durationMs },
    metrics,
  };
}

function hasSamples(sink: Sink): boolean {
  const v = sink.values(['count'], 1);
  if ('passes' in v) return v.passes + v.fails > 0;
  if ('count' in v) return v.count > 0;
  return true;
}

function fmt(v: number, contains: string): string {
  if (contains === 'time') return v >= 1000 ? `${(v / 1000).toFixed(2)}s` : `${v.toFixed(2)}ms`;
  if (contains === 'data') return v >= 1e6 ? `${(v / 1e6).toFixed(1)} MB` : `${(v / 1e3).toFixed(1)} kB`;
  return Number.isInteger(v) ? String(v) : v.toFixed(4);
}

/** A compact terminal rendering of the summary (k6's layout, without colour). */
export function textSummary(data: SummaryData): string {
  const lines: string[] = [];
  const checks = data.root_group.checks;
  if (checks.length > 0) {
    lines.push('  checks');
    for (const c of checks) lines.push(`    ${c.fails === 0 ? '✓' : '✗'} ${c.name.padEnd(40)} ${c.passes} passed, ${c.fails} failed`);
    lines.push('');
  }
  const names = Object.keys(data.metrics).sort();
  const width = Math.min(60, Math.max(...names.map((n) => n.length), 10));
  for (const name of names) {
    const m = data.metrics[name];
    const mark = m.thresholds === undefined ? ' ' : Object.values(m.thresholds).every((t) => t.ok) ? '✓' : '✗';
    let shown: string;
    if (m.type === 'rate') shown = `${(m.values.rate * 100).toFixed(2)}%  ${m.values.passes} of ${m.values.passes + m.values.fails}`;
    else if (m.type === 'counter') shown = `${fmt(m.values.count, m.contains)}  ${m.values.rate.toFixed(2)}/s`;
    else if (m.type === 'gauge') shown = `${fmt(m.values.value, m.contains)}  min=${fmt(m.values.min, m.contains)} max=${fmt(m.values.max, m.contains)}`;
    else
      shown = Object.entries(m.values)
        .map(([k, v]) => `${k}=${fmt(v, m.contains)}`)
        .join(' ');
    lines.push(`  ${mark} ${name.padEnd(width, '.')}: ${shown}`);
    if (m.thresholds) for (const [expr, r] of Object.entries(m.thresholds)) if (!r.ok) lines.push(`      ✗ threshold '${expr}' crossed`);
  }
  return lines.join('\n');
}
