/**
 * Presentation of the gateway bench: per-step tables, the side-by-side summary (max rates,
 * ratios against the two references measured in the same run, targets PASS/MISS, CPU per
 * request) and the profile tables. Pure formatting, no I/O except writeJson.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Row } from './profile.ts';
import type { SearchResult, StepRecord } from './search.ts';

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function table(header: readonly string[], body: readonly (readonly string[])[], leftColumns = 1): string {
  const all = [header, ...body];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  const line = (r: readonly string[]) => r.map((cell, c) => (c < leftColumns ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ').trimEnd();
  const rule = '-'.repeat(line(header).length);
  return [rule, line(header), rule, ...body.map(line), rule].join('\n');
}

/** Components other than the server and the generator (broker, redis) in the order given. */
export function stepTable(steps: readonly StepRecord[], extra: readonly string[]): string {
  const header = ['rate/s', 'ok/s', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'srv cores', 'srv µs/req', ...extra.map((e) => `${e} µs/req`), 'gen cores', 'gen µs/req', 'gen lag p99', 'machine', 'others', 'steal', 'conns', 'result'];
  const body = steps.map((s) => [
    fmt(s.rate),
    fmt(s.okPerSec),
    fmt(s.stats.latency.p50Ms, 1),
    fmt(s.stats.latency.p99Ms, 1),
    fmt(s.stats.latency.maxMs, 0),
    fmt(s.stats.errors.total),
    fmt(s.cpu.cores.server, 2),
    fmt(s.cpuUsPerOk.server),
    ...extra.map((e) => fmt(s.cpuUsPerOk[e])),
    fmt(s.cpu.cores.loadgen, 2),
    fmt(s.cpuUsPerOk.loadgen),
    `${fmt(s.stats.dispatchLag.p99Ms, 1)} ms`,
    `${fmt(s.cpu.machineBusy * 100)}%`,
    `${fmt(s.cpu.othersCores, 2)}${s.contended ? '!' : ''}`,
    fmt(s.cpu.stealCores, 2),
    fmt(s.stats.peakConnections),
    s.pass ? `pass${s.generatorLimited ? ' (gen late)' : ''}` : `FAIL: ${s.reason}${s.generatorLimited ? ' (generator/machine late)' : ''}`,
  ]);
  return table(header, body, 0);
}

export interface ServerResult {
  key: 'bare' | 'express' | 'gateway';
  label: string;
  search: SearchResult;
}

export interface Target {
  figure: string;
  ratio: number;
  min: number;
  pass: boolean;
}

export function summaryTable(results: readonly ServerResult[]): string {
  const rateOf = (k: ServerResult['key']) => results.find((r) => r.key === k)?.search.best?.rate ?? Number.NaN;
  const bare = rateOf('bare');
  const expr = rateOf('express');
  const header = ['server', 'max rate/s', 'p99 @max', 'ok/s @max', 'server cores', 'server µs/req', 'vs express-only', 'vs bare http', '1 core / µs/req', 'others avg', 'next step failed at'];
  const body = results.map((r) => {
    const b = r.search.best;
    const f = r.search.firstFail;
    return [
      r.label,
      b === null ? 'none passed' : fmt(b.rate),
      b === null ? '-' : `${fmt(b.stats.latency.p99Ms, 1)} ms`,
      b === null ? '-' : fmt(b.okPerSec),
      b === null ? '-' : fmt(b.cpu.cores.server, 2),
      b === null ? '-' : fmt(b.cpuUsPerOk.server),
      b === null ? '-' : `${fmt(b.rate / expr, 2)}x`,
      b === null ? '-' : `${fmt(b.rate / bare, 2)}x`,
      b === null ? '-' : `${fmt(1e6 / b.cpuUsPerOk.server)}/s`,
      `${fmt(r.search.steps.reduce((sum, st) => sum + st.cpu.othersCores, 0) / Math.max(1, r.search.steps.length), 2)} cores`,
      f === null ? '(max rate or steps reached)' : `${fmt(f.rate)}/s: ${f.reason}${f.generatorLimited ? ' (gen late)' : ''}`,
    ];
  });
  return table(header, body);
}

/**
 * CPU per request of every server at the highest rate that all of them passed (the same rate
 * ladder is used for each, so there is usually one): a comparison that does not depend on where
 * each search stopped, and that other load on the machine disturbs much less than max rates.
 */
export function commonRateTable(results: readonly ServerResult[]): string | null {
  const passed = results.map((r) => new Map(r.search.steps.filter((s) => s.pass).map((s) => [s.rate, s])));
  const common = [...(passed[0]?.keys() ?? [])].filter((rate) => passed.every((m) => m.has(rate))).sort((a, b) => b - a)[0];
  if (common === undefined) return null;
  const steps = passed.map((m) => m.get(common) as StepRecord);
  const byKey = new Map(results.map((r, i) => [r.key, steps[i]]));
  const us = (k: ServerResult['key']) => byKey.get(k)?.cpuUsPerOk.server ?? Number.NaN;
  const body = results.map((r, i) => {
    const st = steps[i];
    const others = ['broker', 'redis'].filter((n) => st.cpuUsPerOk[n] !== undefined).map((n) => `${n} ${fmt(st.cpuUsPerOk[n])}`);
    return [
      r.label,
      fmt(st.cpuUsPerOk.server),
      `${fmt(us(r.key) / us('express'), 2)}x`,
      `${fmt(us(r.key) / us('bare'), 2)}x`,
      others.length > 0 ? others.join(', ') : '-',
      fmt(st.cpuUsPerOk.loadgen),
      `${fmt(st.stats.latency.p99Ms, 1)} ms`,
      fmt(st.cpu.othersCores, 2),
    ];
  });
  return `CPU per request at ${fmt(common)}/s, the highest rate every server passed:\n${table(['server', 'server µs/req', 'vs express-only', 'vs bare http', 'also (µs/req)', 'gen µs/req', 'p99', 'others (cores)'], body)}`;
}

/** System calls per successful request at each server's max rate (reads/writes, from /proc/<pid>/io). */
export function syscallTable(results: readonly ServerResult[]): string {
  const body = results
    .filter((r) => r.search.best !== null)
    .map((r) => {
      const b = r.search.best as StepRecord;
      const rw = (n: string) => {
        const v = b.syscallsPerOk[n];
        return v === undefined ? '-' : `${fmt(v.reads, 2)} / ${fmt(v.writes, 2)}`;
      };
      return [r.label, fmt(b.rate), rw('server'), rw('broker'), rw('redis'), rw('loadgen')];
    });
  return `system calls per request at each max rate (read-family / write-family, /proc/<pid>/io):\n${table(['server', 'rate/s', 'server', 'broker', 'redis', 'generator'], body)}`;
}

export function targets(results: readonly ServerResult[], minVsExpress: number, minVsBare: number): Target[] {
  const rateOf = (k: ServerResult['key']) => results.find((r) => r.key === k)?.search.best?.rate ?? Number.NaN;
  const gw = rateOf('gateway');
  const out: Target[] = [];
  const add = (figure: string, ratio: number, min: number) => out.push({ figure, ratio, min, pass: Number.isFinite(ratio) && ratio >= min });
  add('gateway max rate / express-only max rate', gw / rateOf('express'), minVsExpress);
  add('gateway max rate / bare node:http max rate', gw / rateOf('bare'), minVsBare);
  return out;
}

export function targetTable(ts: readonly Target[]): string {
  return table(
    ['target', 'ratio', 'needed', 'result'],
    ts.map((t) => [t.figure, `${fmt(t.ratio, 2)}x`, `>= ${fmt(t.min, 2)}x`, Number.isFinite(t.ratio) ? (t.pass ? 'PASS' : 'MISS') : 'n/a']),
  );
}

export function profileTable(title: string, rows: readonly Row[]): string {
  return `${title}\n${table(['', 'ms', 'share'], rows.map((r) => [r.name, fmt(r.ms), `${fmt(r.share * 100, 1)}%`]))}`;
}

export function writeJson(dir: string, startedAt: Date, data: unknown): string {
  fs.mkdirSync(dir, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const file = path.join(dir, `gateway-${stamp}.json`);
  fs.writeFileSync(file, `${JSON.stringify(data, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
  return file;
}
