import { describe, expect, it } from 'vitest';
import { Aimd, CircuitBreaker } from '../src/breaker.ts';
import { classify, classifyError, parseRetryAfter } from '../src/classify.ts';
import { downstreamSchema, loadDownstreams } from '../src/config.ts';
import { Batcher } from '../src/batch.ts';
import { PACE_RESERVE_MS, PACE_SLOT_MS, nextBoost, paceLimiter, paceTarget, secondQuota, shortestWindow, windowCap, type Pacing } from '../src/downstream.ts';
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

describe('windowCap', () => {
  it('limits a limiter window to half the burst and 4.5% of the rate (in jobs)', () => {
    expect(windowCap(400, 40)).toBe(18);
    expect(windowCap(5000, 20)).toBe(10);
    expect(windowCap(5000, 250)).toBe(125);
    expect(windowCap(0.5, 20)).toBe(1);
    expect(windowCap(200, 20)).toBe(9); // 1,000/s in jobs of 5, burst 100
  });
});

describe('pacing', () => {
  const pacing = (rate: number, boost = 1): Pacing => {
    const burst = Math.max(20, Math.ceil(rate * 0.1));
    return { rate, burst, batch: batchSizeFor(rate, burst), boost };
  };

  it('shortestWindow is the tightest duration that keeps any second within rate + burst', () => {
    for (const rate of [10, 37, 100, 250, 1000, 1234, 5000, 20_000, 100_000]) {
      for (const burstShare of [0.02, 0.05, 0.1, 0.3]) {
        const burst = Math.max(2, Math.ceil(rate * burstShare));
        const b = batchSizeFor(rate, burst);
        const max = windowCap(rate / b, burst / b);
        const d = shortestWindow(rate, burst, b, max);
        // A second holds at most floor(1000 / d) + 1 window starts.
        expect(max * b * (Math.floor(1000 / d) + 1)).toBeLessThanOrEqual(rate + burst);
        if (d > 1) expect(max * b * (Math.floor(1000 / (d - 1)) + 1)).toBeGreaterThan(rate + burst);
      }
    }
  });

  it('plans to end the second PACE_RESERVE_MS early at the rate times the boost: behind, faster, never past the bound; ahead, slower, within the second', () => {
    const p = pacing(1000); // jobs of 5, windows of 9 jobs
    const early = 1 - PACE_RESERVE_MS / 1000;
    // Aiming at the rate plus half a window (22.5 orders), PACE_RESERVE_MS before the second ends.
    expect(paceTarget(p, 0, 0)).toBeCloseTo(1022.5 / early, 6);
    expect(paceTarget(p, 511.25, 475)).toBeCloseTo(1022.5 / early, 6);
    expect(paceTarget({ ...p, boost: 1.05 }, 511.25, 475)).toBeCloseTo((1022.5 / early) * 1.05, 6);
    const bound = shortestWindow(p.rate, p.burst, p.batch, 9);
    expect(bound).toBe(42);
    // On plan: 45 orders per 42 ms, as fast as the rate + burst bound allows.
    expect(paceLimiter(p, 511.25, 475)).toEqual({ max: 9, duration: bound });
    // Behind: pinned at the bound, also far behind near the end of the second.
    expect(paceLimiter(p, 400, 475).duration).toBe(bound);
    expect(paceLimiter(p, 0, 990).duration).toBe(bound);
    const aLittleAhead = paceLimiter(p, 600, 500);
    const ahead = paceLimiter(p, 700, 500);
    expect(aLittleAhead.duration).toBeGreaterThan(bound);
    expect(ahead.duration).toBeGreaterThan(aLittleAhead.duration);
    // Ahead late in a second: slower, but no window reaching further into the next second than a normal one.
    expect(paceLimiter(p, 1000, 990).duration).toBe(45); // the base
  });

  it('secondQuota: the rate where pacing steers, none below', () => {
    expect(secondQuota(pacing(1000))).toBe(1000);
    expect(secondQuota(pacing(5000))).toBe(5000);
    expect(secondQuota(pacing(100))).toBe(100); // windows of 5 orders, 20 a second
    expect(secondQuota(pacing(5))).toBe(0); // 5 windows a second: not paced
    expect(secondQuota({ ...pacing(5), rate: 0.5 })).toBe(0);
  });

  it('does not steer rates of fewer than 10 windows a second', () => {
    const steered = pacing(20); // windows of 1 job: 20 a second
    expect(paceLimiter(steered, 0, 900).duration).toBeLessThan(paceLimiter(steered, 2, 100).duration);
    const slow = pacing(5);
    expect(paceLimiter(slow, 0, 900)).toEqual(paceLimiter(slow, 5, 100));
    expect(paceLimiter(slow, 0, 900)).toEqual({ max: 1, duration: 200 });
  });

  /**
   * A model of BullMQ's fixed-window limiter: a window admits `max` jobs when it starts, expires
   * after the duration in force then, and the next one starts a gap later (the worker's timer
   * and its Redis round trip: 0.3–1.5 ms); a stall of 50–100 ms (a slow call, a late timer) follows
   * a window with a chance of its duration / 6 s, so one comes about every 6 s whatever the windows.
   * A window's orders go out through the process's delivery slots one after another, so they
   * arrive spread over the 12 ms after it starts (from 1 ms on); the pacer runs every slot. Each
   * job of a window starts only while its middle is within the secondQuota of the second it is
   * expected to arrive in (DeliveryWrites.start: now plus the mean arrival time, 7 ms); once a
   * second has its quota, or a job was refused, the limiter is held closed until that second
   * ends. (Held only until jobs counted against the next second, the window that opened then had
   * half its orders arrive before the second ended: seconds 2 % over, then 2 % under.)
   */
  function simulate(rate: number, seconds: number, seed: number): { perSecond: number[]; stalled: Map<number, number>; maxSliding: number; p: Pacing } {
    let x = seed;
    const random = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const p = pacing(rate, 1.05);
    const delivered: number[] = []; // delivery times, ms
    let limiter = paceLimiter(p, 0, 0);
    let t = 0;
    let nextPace = PACE_SLOT_MS;
    const stalled = new Map<number, number>(); // stalls per second they touched
    const quota = secondQuota(p);
    const counts = new Map<number, number>(); // orders started per second of arrival
    while (t < seconds * 1000) {
      while (nextPace <= t) {
        const sec = Math.floor(nextPace / 1000) * 1000;
        const count = delivered.filter((d) => d >= sec && d < nextPace).length;
        limiter = paceLimiter(p, count, nextPace - sec);
        nextPace += PACE_SLOT_MS;
      }
      const lead = 7;
      const sec = Math.floor((t + lead) / 1000);
      let count = counts.get(sec) ?? 0;
      let refused = false;
      let jobs = 0;
      for (; jobs < limiter.max; jobs++) {
        if (quota > 0 && count + p.batch / 2 > quota) {
          refused = true;
          break;
        }
        count += p.batch;
      }
      const orders = jobs * p.batch;
      for (let i = 0; i < orders; i++) delivered.push(t + 1 + (12 * i) / orders);
      counts.set(sec, count);
      const stall = random() < limiter.duration / 6000 ? 50 + 50 * random() : 0;
      const expiry = quota > 0 && (refused || count >= quota) ? Math.max(t + limiter.duration, (sec + 1) * 1000) : t + limiter.duration;
      t = expiry + 0.3 + 1.2 * random() + stall;
      if (stall > 0) for (const sec of new Set([Math.floor((t - stall) / 1000), Math.floor(t / 1000)])) stalled.set(sec, (stalled.get(sec) ?? 0) + 1);
    }
    const perSecond = Array.from({ length: seconds }, (_, s) => delivered.filter((d) => d >= s * 1000 && d < (s + 1) * 1000).length);
    let maxSliding = 0;
    for (let i = 0, j = 0; i < delivered.length; i++) {
      while (delivered[i] - delivered[j] >= 1000) j++;
      maxSliding = Math.max(maxSliding, i - j + 1);
    }
    return { perSecond, stalled, maxSliding, p };
  }

  it('in a model with gaps and stalls: seconds within 1% of the rate (3% after a stall, 8% more per stall), no 1-s window above rate + burst', () => {
    for (const rate of [100, 1000, 5000]) {
      for (const seed of [1, 2, 3, 4, 5]) {
        const { perSecond, stalled, maxSliding, p } = simulate(rate, 30, seed);
        const what = `${rate}/s seed ${seed}: ${perSecond.join(' ')}; stalls in ${[...stalled.keys()].join(' ')}`;
        expect(maxSliding, what).toBeLessThanOrEqual(p.rate + p.burst);
        const seconds = perSecond.slice(1);
        expect(Math.abs(seconds.reduce((a, n) => a + n, 0) / seconds.length - rate) / rate, what).toBeLessThan(0.03);
        // A stall of up to 100 ms costs up to 10% of a second; what is left of the second repays
        // what the burst allows. A second that lost time catches up until it ends, and the
        // orders of the jobs it started in its last milliseconds arrive partly in the next one.
        perSecond.forEach((n, s) => {
          const allowed = 0.01 + 0.08 * (stalled.get(s) ?? 0) + (stalled.has(s - 1) ? 0.02 : 0);
          if (s > 0) expect(Math.abs(n - rate) / rate, `second ${s} of ${what}`).toBeLessThanOrEqual(allowed);
        });
      }
    }
  });

  it('the same model without pacing (the on-track limiter throughout) loses what the stalls take', () => {
    // The reference for the test above: it shows the model's stalls cost seconds more than 5%.
    const p = pacing(1000, 1.05);
    const l = paceLimiter(p, 500, 500);
    let x = 3;
    const random = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const perSecond = new Array<number>(30).fill(0);
    for (let t = 0; t < 30_000; ) {
      perSecond[Math.floor((t + 3) / 1000)] += l.max * p.batch;
      const stall = random() < l.duration / 6000 ? 50 + 50 * random() : 0;
      t += l.duration + 0.3 + 1.2 * random() + stall;
    }
    expect(Math.min(...perSecond.slice(1, -1))).toBeLessThan(950);
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

  it('sizes jobs at about 5 ms of the rate, within half the burst and 100 orders', () => {
    expect(batchSizeFor(100, 20)).toBe(1);
    expect(batchSizeFor(1000, 50)).toBe(5);
    expect(batchSizeFor(5000, 250)).toBe(25);
    expect(batchSizeFor(10_000, 1000)).toBe(50);
    expect(batchSizeFor(20_000, 2000)).toBe(100);
    expect(batchSizeFor(1_000_000, 100_000)).toBe(100);
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

describe('Batcher', () => {
  it('sends the items of one event-loop turn in one flush, each caller getting its own result', async () => {
    const flushes: string[][] = [];
    const b = new Batcher<string, string>(async (items) => {
      flushes.push(items);
      return items.map((i) => i.toUpperCase());
    });
    const [x, ys] = await Promise.all([b.add('a'), b.addAll(['b', 'c'])]);
    expect([x, ys]).toEqual(['A', ['B', 'C']]);
    expect(flushes).toEqual([['a', 'b', 'c']]);
  });

  it('a failing item fails only its own caller: the turn is retried item by item', async () => {
    const flushes: string[][] = [];
    const b = new Batcher<string, string>(async (items) => {
      flushes.push(items);
      if (items.includes('bad')) throw new Error('WRONGTYPE');
      return items.map((i) => i.toUpperCase());
    });
    const results = await Promise.allSettled([b.add('a'), b.addAll(['bad', 'b']), b.add('c')]);
    expect(results[0]).toEqual({ status: 'fulfilled', value: 'A' });
    expect(results[1]).toMatchObject({ status: 'rejected', reason: new Error('WRONGTYPE') });
    expect(results[2]).toEqual({ status: 'fulfilled', value: 'C' });
    expect(flushes).toEqual([['a', 'bad', 'b', 'c'], ['a'], ['bad'], ['b'], ['c']]);
  });
});
