import { describe, expect, it } from 'vitest';
import { Aimd, CircuitBreaker } from '../src/breaker.ts';
import { classify, classifyError, parseRetryAfter } from '../src/classify.ts';
import { downstreamSchema, loadDownstreams } from '../src/config.ts';
import { DITHER_SLOT_MS, limiterAt, limiterPlan, nextBoost } from '../src/downstream.ts';
import { batchSizeFor, jobIdFor, toJobs, toOrder } from '../src/pump.ts';
import { inWindow, localMinutes, secondsUntilOpen, windowState } from '../src/schedule.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../../lib/src/config.ts';

const at = (iso: string) => Date.parse(iso);

describe('schedule', () => {
  const d = downstreamSchema.parse({
    name: 'erp',
    url: 'http://127.0.0.1:1/x',
    rate: 50,
    timezone: 'Europe/Berlin',
    windows: [
      { from: '22:00', to: '08:00', rate: 1000 },
      { from: '12:00', to: '13:00', pause: true },
    ],
  });
  it('reads local time in the downstream time zone', () => {
    expect(localMinutes(at('2026-01-15T21:30:00Z'), 'Europe/Berlin')).toBe(22 * 60 + 30);
    expect(localMinutes(at('2026-07-15T21:30:00Z'), 'Europe/Berlin')).toBe(23 * 60 + 30);
  });
  it('applies windows that wrap midnight, pauses, and the base rate elsewhere', () => {
    expect(windowState(d, at('2026-01-15T22:30:00Z'))).toEqual({ rate: 1000, paused: false, window: '22:00-08:00' });
    expect(windowState(d, at('2026-01-15T06:59:00Z'))).toMatchObject({ rate: 1000 });
    expect(windowState(d, at('2026-01-15T07:00:00Z'))).toEqual({ rate: 50, paused: false, window: 'base' });
    expect(windowState(d, at('2026-01-15T11:30:00Z'))).toEqual({ rate: 0, paused: true, window: '12:00-13:00' });
    expect(inWindow(0, 22 * 60, 8 * 60)).toBe(true);
    expect(inWindow(12 * 60, 22 * 60, 8 * 60)).toBe(false);
  });
  it('knows how long until a paused schedule opens', () => {
    expect(secondsUntilOpen(d, at('2026-01-15T11:30:00Z'))).toBe(30 * 60);
    expect(secondsUntilOpen(d, at('2026-01-15T10:00:00Z'))).toBe(0);
  });
});

describe('classify', () => {
  it('maps answers to outcomes', () => {
    expect(classify(200, undefined)).toEqual({ kind: 'delivered', status: 200 });
    expect(classify(204, undefined).kind).toBe('delivered');
    expect(classify(429, '2')).toEqual({ kind: 'pushback', status: 429, retryAfterMs: 2000 });
    expect(classify(429, undefined)).toMatchObject({ kind: 'pushback', retryAfterMs: 1000 });
    expect(classify(503, '1')).toMatchObject({ kind: 'pushback' });
    expect(classify(503, undefined)).toMatchObject({ kind: 'retry' });
    expect(classify(500, undefined)).toMatchObject({ kind: 'retry' });
    expect(classify(408, undefined)).toMatchObject({ kind: 'retry' });
    expect(classify(400, undefined)).toMatchObject({ kind: 'dead', status: 400 });
    expect(classify(404, undefined)).toMatchObject({ kind: 'dead' });
    expect(classifyError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toMatchObject({ kind: 'retry', reason: 'network: ECONNREFUSED' });
  });
  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = at('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter(undefined, now)).toBeNull();
  });
});

describe('circuit breaker and AIMD', () => {
  it('opens after consecutive failures with a doubling cool-down, closes on success', () => {
    const b = new CircuitBreaker(3, 1000, 4000);
    expect([b.failure(0), b.failure(0)]).toEqual([0, 0]);
    expect(b.failure(0)).toBe(1000);
    expect(b.state).toBe('open');
    // Failed probes (the first failure after each cool-down) double it, up to the cap.
    expect(b.failure(1000)).toBe(2000);
    expect(b.failure(3000)).toBe(4000);
    expect(b.failure(7000)).toBe(4000);
    b.success();
    expect(b.state).toBe('closed');
    expect([b.failure(20_000), b.failure(20_000), b.failure(20_000)]).toEqual([0, 0, 1000]);
  });
  it('does not escalate on failures of deliveries already in flight when it opened', () => {
    const b = new CircuitBreaker(5, 1000, 30_000);
    const burst = Array.from({ length: 50 }, () => b.failure(10_000));
    expect(burst.filter((p) => p > 0)).toEqual([1000]);
    expect(b.failure(10_999)).toBe(0);
    // The probe after the cool-down fails: reopened for twice as long, once.
    expect(b.failure(11_000)).toBe(2000);
    expect(b.failure(11_500)).toBe(0);
  });
  it('cuts multiplicatively at most once per hold period and creeps back additively', () => {
    const a = new Aimd(0.5, 0.1, 0.05, 1000);
    expect(a.pushback(10_000)).toBe(true);
    expect(a.pushback(10_500)).toBe(false);
    expect(a.factor).toBe(0.5);
    expect(a.creep(11_000)).toBe(false); // too soon after a cut
    expect(a.creep(13_500)).toBe(true);
    expect(a.factor).toBeCloseTo(0.6);
  });
});

describe('limiterPlan', () => {
  const exact = (rate: number, burst: number) => {
    const p = limiterPlan(rate, burst);
    expect(p.lo).toEqual(p.hi);
    return p.lo;
  };

  it('spreads the rate over windows no bigger than half the burst nor 3% of the rate', () => {
    expect(exact(200, 20)).toEqual({ max: 6, duration: 30 });
    expect(exact(5000, 20)).toEqual({ max: 10, duration: 2 });
    expect(exact(5000, 250)).toEqual({ max: 125, duration: 25 });
    expect(exact(0.5, 20)).toEqual({ max: 1, duration: 2000 });
    expect(exact(1000, 50)).toEqual({ max: 25, duration: 25 });
  });

  it('dithers between the two limiters around a rate no single one gives', () => {
    // 1,020/s in windows of at most 25 jobs: no whole-millisecond duration hits it.
    const p = limiterPlan(1000, 50, 1.02);
    const n = (l: { max: number; duration: number }) => (1000 * l.max) / l.duration;
    expect(p.lo.max).toBeLessThanOrEqual(25);
    expect(p.hi.max).toBeLessThanOrEqual(25);
    expect(n(p.lo)).toBeLessThan(1020);
    expect(n(p.hi)).toBeGreaterThan(1020);
    expect(p.nominal).toBeCloseTo(1020, 6);
    // Over any 40 slots (10 s) the average of the limiters used is the target, within one slot.
    const t0 = 1_700_000_000_000;
    let sum = 0;
    for (let i = 0; i < 40; i++) sum += n(limiterAt(p, t0 + i * DITHER_SLOT_MS));
    expect(Math.abs(sum / 40 - 1020)).toBeLessThanOrEqual((n(p.hi) - n(p.lo)) / 40 + 1e-9);
  });
});

describe('nextBoost', () => {
  it('makes up for what the limiter under-delivers, within rate + burst', () => {
    expect(nextBoost(1000, 100, 1000, 960)).toBeCloseTo(1000 / 960, 6);
    expect(nextBoost(100, 20, 100, 90)).toBeCloseTo(100 / 90, 6);
    // never a nominal rate above rate + burst − one window (25 jobs) per second
    expect(nextBoost(1000, 50, 1000, 900)).toBeCloseTo(1.025, 6);
    expect(nextBoost(50, 5, 50, 40)).toBeCloseTo(1.06, 6); // windows of 2: 50 + 5 - 2 per second
    // over-delivery brings it down (not below 0.95)
    expect(nextBoost(1000, 100, 1040, 1020)).toBeCloseTo(1040 / 1020, 6);
    expect(nextBoost(1000, 50, 1000, 1200)).toBe(0.95);
  });

  it('ignores measurements that say nothing about the limiter', () => {
    expect(nextBoost(1000, 50, 1000, 700)).toBeNull(); // the drainer could not keep up, or the window ran dry
    expect(nextBoost(1000, 50, 1000, 0)).toBeNull();
    expect(nextBoost(0, 50, 1000, 10)).toBeNull();
  });
});

describe('pump jobs', () => {
  it('keys jobs by position and delivers with the order id as Idempotency-Key', () => {
    expect(jobIdFor('orders', 3, 17)).toBe('orders:3:17');
    const o = toOrder({ topic: 'orders', partition: 3, offset: 17, key: 'SKU-1', value: JSON.stringify({ orderId: 'o-1', acceptedAt: 5 }), timestamp: 9 });
    expect(o).toMatchObject({ orderId: 'o-1', acceptedAt: 5, offset: 17 });
    expect(toOrder({ topic: 't', partition: 0, offset: 2, key: null, value: 'not json', timestamp: 9 })).toMatchObject({ orderId: 't-0-2', acceptedAt: 9 });
  });

  it('sizes jobs at about 10 ms of the rate, within half the burst and 50 orders', () => {
    expect(batchSizeFor(100, 20)).toBe(1);
    expect(batchSizeFor(1000, 50)).toBe(10);
    expect(batchSizeFor(5000, 250)).toBe(50);
    expect(batchSizeFor(1_000_000, 100_000)).toBe(50);
    expect(batchSizeFor(5000, 20)).toBe(10); // half the burst
    expect(batchSizeFor(0, 20)).toBe(1);
  });

  it('cuts jobs at the batch size and at gaps in the offsets', () => {
    const order = (offset: number) => ({ orderId: `o-${offset}`, body: '{}', offset, acceptedAt: 0 });
    const jobs = toJobs('t', 1, [1, 2, 3, 4, 6, 7].map(order), 3);
    expect(jobs.map((j) => j.orders.map((o) => o.offset))).toEqual([[1, 2, 3], [4], [6, 7]]);
    expect(jobs.every((j) => j.topic === 't' && j.partition === 1)).toBe(true);
  });
});

describe('downstreams file', () => {
  it('reports every problem at once', () => {
    const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'spw-cfg-')), 'd.yaml');
    fs.writeFileSync(f, 'downstreams:\n  - name: Bad Name\n    url: nope\n    rate: -1\n    windows: [{ from: "25:00", to: "08:00" }]\n');
    let err: unknown;
    try {
      loadDownstreams(f);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const text = (err as ConfigError).problems.join('\n');
    for (const field of ['name', 'url', 'rate', 'windows.0.from']) expect(text).toContain(field);
  });
});
