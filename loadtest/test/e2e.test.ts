/**
 * End to end on a real stack: `spillway loadtest flash-sale --up`, scaled down to seconds —
 * a private `spillway up` (broker, gateway, drainer, simulator, redis-server), the spike with
 * double submits and poison orders, the drain, and the verifier: every 202 delivered or
 * dead-lettered (none lost), no duplicate orders, stock and per-user limits held, the
 * downstream within rate + burst. The report and both summaries are written.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, spillwayBin, tempDir } from '../../lib/src/testing/processes.ts';

interface Summary {
  exitCode: number;
  intake: { accepted: number; replays: number; rejected: Record<string, number>; keyConflicts: unknown[] };
  verdict: {
    ok: boolean;
    checks: { name: string; ok: boolean; detail: string }[];
    numbers: { accepted: number; delivered: number; deadLettered: number; buffered: number; lost: number; maxPerSecond: number; rateLimit: number; skus: { sku: string; sold: number; stock: number }[] };
    drain: { drained: boolean };
  };
  k6: { metrics: Record<string, { values: Record<string, number> }> };
  timeline: { points: { accepted: number; backlog: number | null; deliveredPerSecond: number | null }[] };
}

describe('spillway loadtest flash-sale --up (scaled down)', () => {
  it('runs the spike on a private stack and the verifier passes', async () => {
    const out = path.join(tempDir('e2e'), 'report');
    const args = [
      spillwayBin,
      'loadtest',
      'flash-sale',
      '--up',
      '--quiet',
      '--out',
      out,
      '--drain-timeout',
      '60',
      ...['STEADY_RATE=4', 'PRE_SALE=2s', 'RAMP=1s', 'HOLD=4s', 'DECAY=2s', 'TAIL=1s', 'POISON=0.05', 'DOUBLE_SUBMIT=0.1', 'PHONE_STOCK=60', 'P99_LIMIT=p(99)<20000'].flatMap((e) => ['-e', e]),
    ];
    const { code, text } = await new Promise<{ code: number | null; text: string }>((resolve) => {
      // vitest sets BASE_URL=/ (vite's); the scenario's __ENV must not see it.
      const env = { ...process.env };
      delete env.BASE_URL;
      const p = spawn(process.execPath, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let t = '';
      p.stdout.on('data', (d: Buffer) => (t += d.toString()));
      p.stderr.on('data', (d: Buffer) => (t += d.toString()));
      p.once('exit', (c) => resolve({ code: c, text: t }));
    });
    expect(code, text).toBe(0);
    expect(text).toMatch(/verdict: PASS/);
    const s = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as Summary;
    const n = s.verdict.numbers;
    expect(s.verdict.ok).toBe(true);
    expect(s.verdict.checks.every((c) => c.ok)).toBe(true);
    expect(n.accepted).toBeGreaterThan(50);
    expect(n.accepted).toBe(s.intake.accepted);
    expect(n.lost).toBe(0);
    expect(n.delivered + n.deadLettered + n.buffered).toBe(n.accepted);
    expect(s.verdict.drain.drained).toBe(true);
    expect(n.buffered).toBe(0);
    expect(n.maxPerSecond).toBeLessThanOrEqual(n.rateLimit);
    expect(s.intake.keyConflicts).toEqual([]);
    // The phones (60 units) sell out during the spike; never more than the stock.
    const phone = n.skus.find((x) => x.sku.startsWith('PHONE-'));
    expect(phone?.sold).toBeLessThanOrEqual(60);
    expect(s.intake.rejected.SOLD_OUT ?? 0).toBeGreaterThan(0);
    // The k6-format summary from the scenario's handleSummary, and the report with charts.
    expect(fs.existsSync(path.join(out, 'flash-sale-summary.json'))).toBe(true);
    expect(s.k6.metrics.orders_accepted.values.count).toBeGreaterThan(0);
    expect(s.timeline.points.some((p) => p.accepted > 0)).toBe(true);
    const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).toMatch(/<path class="series" data-series="accepted \(202\)"/);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=/); // self-contained
  }, 150_000);
});
