/**
 * Presentation of the drainer bench: per-second analysis of a rate run, CPU time of processes
 * from /proc, and the one table (figure, reference measured in the same run, ratio, target,
 * PASS/MISS) plus the JSON file under bench/out/.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface Row {
  figure: string;
  value: string;
  reference: string;
  ratio: string;
  target: string;
  /** true = PASS, false = MISS, null = no target. */
  pass: boolean | null;
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function pct(x: number, digits = 2): string {
  return Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${(x * 100).toFixed(digits)}%` : 'n/a';
}

export function printTable(rows: readonly Row[]): void {
  const cells = [['figure', 'value', 'reference', 'ratio', 'target', 'result'], ...rows.map((r) => [r.figure, r.value, r.reference, r.ratio, r.target, r.pass === null ? '-' : r.pass ? 'PASS' : 'MISS'])];
  const widths = cells[0].map((_, i) => Math.max(...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  console.log(line(cells[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells.slice(1)) console.log(line(c));
}

export function writeJson(dir: string, prefix: string, value: unknown): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${prefix}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
  return file;
}

/** User + system CPU seconds a process has used so far (undefined once it has exited). */
export function cpuSeconds(pid: number): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(rest[11]) + Number(rest[12]);
  return ticks / 100; // USER_HZ is 100 on Linux
}

export interface RateAccuracy {
  rate: number;
  /** Epoch seconds measured, inclusive. */
  from: number;
  to: number;
  counts: number[];
  mean: number;
  /** (mean − rate) / rate over the whole window. */
  meanError: number;
  max: number;
  min: number;
  /** The second furthest from the rate (count and signed error). */
  worst: number;
  worstError: number;
  /** (max − rate) / rate. */
  maxError: number;
}

/** Per-second counts over [from, to] (missing seconds count 0) against `rate`. */
export function rateAccuracy(rate: number, buckets: ReadonlyMap<number, number>, from: number, to: number): RateAccuracy {
  const counts: number[] = [];
  for (let s = from; s <= to; s++) counts.push(buckets.get(s) ?? 0);
  const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
  let worst = counts[0];
  for (const c of counts) if (Math.abs(c - rate) > Math.abs(worst - rate)) worst = c;
  const max = Math.max(...counts);
  return {
    rate,
    from,
    to,
    counts,
    mean,
    meanError: (mean - rate) / rate,
    max,
    min: Math.min(...counts),
    worst,
    worstError: (worst - rate) / rate,
    maxError: (max - rate) / rate,
  };
}
