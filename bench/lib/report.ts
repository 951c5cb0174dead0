/**
 * Figures, comparisons and their presentation: percentiles, rates, the side-by-side table
 * (figure, reference from the same run, ratio, target, PASS/MISS) and the JSON file.
 * Units: MB = 10^6 bytes; throughput counts payload bytes only (RECORD_BYTES per record).
 */
import fs from 'node:fs';
import path from 'node:path';
import { RECORD_BYTES } from './records.ts';

export function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[idx];
}

/**
 * The median element by `key`; for an even count the upper one by `key`. Callers pick the key so
 * that this is never the flattering one of the middle two: pass times (the slower pass), or a
 * reference's rate (the faster reference). Sub-second read-backs and full-speed runs on a shared
 * 2-core machine swing by 30 % and more from one pass to the next, so the runs that carry a
 * target, and their references, are made several times and the median pass is what counts.
 */
export function medianBy<T>(xs: readonly T[], key: (x: T) => number): T {
  const sorted = [...xs].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor(sorted.length / 2)];
}

export interface Throughput {
  records: number;
  ms: number;
  recordsPerSec: number;
  mbPerSec: number;
}

export function throughput(records: number, ms: number): Throughput {
  const s = ms / 1000;
  return { records, ms: Math.round(ms), recordsPerSec: records / s, mbPerSec: (records * RECORD_BYTES) / 1e6 / s };
}

export interface Latency {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  samples: number;
}

export function latency(values: readonly number[]): Latency {
  return { p50Ms: percentile(values, 0.5), p99Ms: percentile(values, 0.99), maxMs: percentile(values, 1), samples: values.length };
}

/** `higher`: the figure should be at least `target` x the reference; `lower`: below an absolute limit. */
export interface Comparison {
  figure: string;
  value: number;
  unit: string;
  reference: string;
  referenceValue: number | null;
  ratio: number | null;
  target: string;
  pass: boolean | null;
}

export function ratioRow(figure: string, value: number, unit: string, reference: string, referenceValue: number, minRatio: number | null): Comparison {
  const ratio = value / referenceValue;
  return {
    figure,
    value,
    unit,
    reference,
    referenceValue,
    ratio,
    target: minRatio === null ? '-' : `>= ${minRatio}x`,
    pass: minRatio === null ? null : ratio >= minRatio,
  };
}

/** A figure whose reference was not measured in this run (its phase was not selected). */
export function missingRow(figure: string, value: number, unit: string, reference: string, minRatio: number | null): Comparison {
  return { figure, value, unit, reference: `${reference}: not run`, referenceValue: null, ratio: null, target: minRatio === null ? '-' : `>= ${minRatio}x`, pass: null };
}

export function limitRow(figure: string, value: number, unit: string, max: number): Comparison {
  return { figure, value, unit, reference: '-', referenceValue: null, ratio: null, target: `< ${max} ${unit}`, pass: value < max };
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function pad(rows: readonly (readonly string[])[]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n');
}

/** Decimals a figure is printed with: 2 below 1, 1 below 100, none above. */
function decimals(v: number): number {
  return v < 1 ? 2 : v < 100 ? 1 : 0;
}

export function comparisonTable(rows: readonly Comparison[]): string {
  const header = ['figure', 'value', 'reference (same run)', 'ratio', 'target', 'result'];
  const body = rows.map((r) => [
    r.figure,
    `${fmt(r.value, decimals(r.value))} ${r.unit}`,
    r.referenceValue === null ? r.reference : `${fmt(r.referenceValue, decimals(r.referenceValue))} (${r.reference})`,
    r.ratio === null ? '-' : `${fmt(r.ratio, 2)}x`,
    r.target,
    r.pass === null ? (r.target === '-' ? 'info' : 'n/a') : r.pass ? 'PASS' : 'MISS',
  ]);
  const table = pad([header, ...body]);
  const rule = '-'.repeat(table.split('\n')[0].length);
  return [rule, ...table.split('\n').flatMap((l, i) => (i === 0 ? [l, rule] : [l])), rule].join('\n');
}

export function writeJson(dir: string, startedAt: Date, data: unknown): string {
  fs.mkdirSync(dir, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const file = path.join(dir, `broker-${stamp}.json`);
  fs.writeFileSync(file, `${JSON.stringify(data, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  return file;
}
