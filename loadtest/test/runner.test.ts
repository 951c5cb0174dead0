/**
 * `spillway loadtest` running small k6 scripts against a slow local HTTP server (no stack): the
 * shim's open model (arrivals keep their schedule while every answer takes a second), dropped
 * iterations when maxVUs are exhausted, thresholds deciding the exit code (99), __VU/__ITER per
 * iteration, and invalid thresholds (104).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, spillwayBin, tempDir } from '../../lib/src/testing/processes.ts';

interface Seen {
  at: number;
  key: string;
}

let server: http.Server;
let baseUrl: string;
let delayMs = 1000;
let seen: Seen[] = [];
let offset = 0;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const at = performance.now();
    req.resume();
    req.on('end', () => {
      seen.push({ at, key: String(req.headers['idempotency-key'] ?? '') });
      setTimeout(() => {
        res.writeHead(202, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ orderId: `o-${offset}`, status: 'accepted', partition: 0, offset: offset++ }));
      }, delayMs);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

function loadtest(script: string, extra: string[] = []): Promise<{ code: number | null; out: string; dir: string; summary: () => Record<string, unknown> }> {
  const dir = tempDir('runner');
  const file = path.join(dir, 'script.js');
  fs.writeFileSync(file, script);
  const out = path.join(dir, 'out');
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env.BASE_URL; // vite's, set by vitest
    const p = spawn(process.execPath, [spillwayBin, 'loadtest', file, '--base-url', baseUrl, '--no-verify', '--keep-ledger', '--quiet', '--out', out, ...extra], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    p.stdout.on('data', (d: Buffer) => (text += d.toString()));
    p.stderr.on('data', (d: Buffer) => (text += d.toString()));
    p.once('exit', (code) =>
      resolve({ code, out: text, dir: out, summary: () => JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')) as Record<string, unknown> }),
    );
  });
}

const order = `
export default async function () {
  const r = await http.asyncRequest('POST', __ENV.BASE_URL + '/v1/orders', JSON.stringify({ sku: 'X', userId: 'u', quantity: 1 }), {
    headers: { 'Content-Type': 'application/json', 'Idempotency-Key': 'vu' + __VU + '-iter' + __ITER },
  });
  check(r, { 'accepted': (x) => x.status === 202, 'has orderId': (x) => typeof x.json('orderId') === 'string' });
  answers.add(1);
}`;

const header = `
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
const answers = new Counter('answers');
`;

describe('spillway loadtest (k6 shim, open model)', () => {
  it('keeps the arrival schedule while every answer takes a second', async () => {
    seen = [];
    delayMs = 1000;
    const r = await loadtest(`${header}
export const options = {
  scenarios: { open: { executor: 'constant-arrival-rate', rate: 20, timeUnit: '1s', duration: '2s', preAllocatedVUs: 2, maxVUs: 100 } },
  thresholds: { dropped_iterations: ['count==0'], checks: ['rate==1'], answers: ['count==40'], http_req_duration: ['p(50)>900'] },
};
${order}`);
    expect(r.code, r.out).toBe(0);
    expect(seen).toHaveLength(40);
    // Requests kept arriving although none had been answered yet: the first answer came 1 s
    // after the first request; a closed model with 2 VUs would have sent 2 by then.
    const first = seen[0].at;
    expect(seen.filter((s) => s.at < first + 900).length).toBeGreaterThanOrEqual(12);
    // __VU and __ITER are per iteration (AsyncLocalStorage): 40 distinct Idempotency-Keys.
    expect(new Set(seen.map((s) => s.key)).size).toBe(40);
    const s = r.summary();
    expect((s.intake as { accepted: number }).accepted).toBe(40);
    const open = (s.executors as Record<string, { started: number; dropped: number; allocatedVus: number }>).open;
    expect(open.started).toBe(40);
    expect(open.dropped).toBe(0);
    expect(open.allocatedVus).toBeGreaterThan(15);
  });

  it('counts dropped_iterations when maxVUs are exhausted, and a crossed threshold exits 99', async () => {
    seen = [];
    delayMs = 1500;
    const r = await loadtest(`${header}
export const options = {
  scenarios: { tight: { executor: 'constant-arrival-rate', rate: 20, timeUnit: '1s', duration: '1s', preAllocatedVUs: 1, maxVUs: 3 } },
  thresholds: { dropped_iterations: ['count==0'] },
};
${order}`);
    expect(r.code, r.out).toBe(99);
    expect(r.out).toMatch(/threshold dropped_iterations 'count==0' crossed/);
    const s = r.summary();
    const k6 = s.k6 as { metrics: Record<string, { values: Record<string, number>; thresholds?: Record<string, { ok: boolean }> }> };
    expect(k6.metrics.dropped_iterations.values.count).toBe(17);
    expect(k6.metrics.dropped_iterations.thresholds).toEqual({ 'count==0': { ok: false } });
    expect(seen).toHaveLength(3);
    expect(fs.existsSync(path.join(r.dir, 'report.html'))).toBe(true);
  });

  it('refuses thresholds on unknown metrics (exit 104) before sending anything', async () => {
    seen = [];
    const r = await loadtest(`${header}
export const options = {
  scenarios: { s: { executor: 'constant-arrival-rate', rate: 1, timeUnit: '1s', duration: '1s', preAllocatedVUs: 1 } },
  thresholds: { no_such_metric: ['count>0'], http_reqs: ['p(99)<1'] },
};
${order}`);
    expect(r.code, r.out).toBe(104);
    expect(r.out).toMatch(/no metric named 'no_such_metric'/);
    expect(r.out).toMatch(/'p\(99\)' is not an aggregation of a counter metric/);
    expect(seen).toHaveLength(0);
  });
});
