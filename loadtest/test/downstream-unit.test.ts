import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/src/config.ts';
import { run, spillwayBin } from '../../lib/src/testing/processes.ts';
import { loadDownstreamConfig } from '../src/downstream/config.ts';
import { Ledger, TAIL_SECONDS } from '../src/downstream/ledger.ts';
import { KeySet } from '../src/downstream/key-set.ts';
import { TokenBucket, retryAfterSeconds } from '../src/downstream/token-bucket.ts';

describe('TokenBucket', () => {
  it('admits the burst at once, then one per 1/rate seconds', () => {
    const b = new TokenBucket(10, 3, 0);
    expect([b.tryTake(0).ok, b.tryTake(0).ok, b.tryTake(0).ok]).toEqual([true, true, true]);
    const refused = b.tryTake(0);
    expect(refused).toEqual({ ok: false, retryAfterMs: 100 });
    expect(b.tryTake(50).ok).toBe(false);
    expect(b.tryTake(100).ok).toBe(true);
    expect(b.tryTake(100).ok).toBe(false);
    // Idle time refills only up to the burst.
    for (let i = 0; i < 3; i++) expect(b.tryTake(10_000).ok).toBe(true);
    expect(b.tryTake(10_000).ok).toBe(false);
  });

  it('never admits more than burst + rate in any 1-second window', () => {
    const rate = 37;
    const burst = 5;
    const b = new TokenBucket(rate, burst, 0);
    const admitted: number[] = [];
    // A request every 3 ms for 10 s, with an irregular stride.
    for (let t = 0, i = 0; t < 10_000; t += 1 + (i++ % 5)) if (b.tryTake(t).ok) admitted.push(t);
    for (let start = 0; start < 10_000; start += 7) {
      const n = admitted.filter((t) => t >= start && t < start + 1000).length;
      expect(n).toBeLessThanOrEqual(rate + burst);
    }
    expect(admitted.length).toBeLessThanOrEqual(burst + rate * 10);
    expect(admitted.length).toBeGreaterThanOrEqual(rate * 10 - 1);
  });

  it('treats rate 0 as unlimited and ignores a clock that steps back', () => {
    const free = new TokenBucket(0, 1, 0);
    for (let i = 0; i < 1000; i++) expect(free.tryTake(0).ok).toBe(true);
    const b = new TokenBucket(1, 1, 1000);
    expect(b.tryTake(1000).ok).toBe(true);
    expect(b.tryTake(0).ok).toBe(false);
    expect(b.tryTake(1500).ok).toBe(false);
    expect(b.tryTake(2000).ok).toBe(true);
  });

  it('rejects impossible settings; Retry-After is whole seconds, at least 1', () => {
    expect(() => new TokenBucket(-1, 1, 0)).toThrow(RangeError);
    expect(() => new TokenBucket(1, 0, 0)).toThrow(RangeError);
    expect([retryAfterSeconds(0.5), retryAfterSeconds(1000), retryAfterSeconds(1001), retryAfterSeconds(2500)]).toEqual([1, 1, 2, 3]);
  });
});

describe('KeySet', () => {
  it('holds each key once, over many shards, and iterates over every key exactly once', () => {
    const s = new KeySet();
    expect(s.size).toBe(0);
    expect(s.has('')).toBe(false);
    // UUID-shaped, sequential and short keys, the empty string and non-ASCII ones.
    const keys = ['', 'é', '注文-1', ...Array.from({ length: 20_000 }, (_, i) => (i % 2 === 0 ? `order-${i}` : crypto.randomUUID()))];
    for (const k of keys) expect(s.add(k)).toBe(true);
    for (const k of keys) expect(s.add(k)).toBe(false);
    expect(s.size).toBe(keys.length);
    for (const k of keys) expect(s.has(k)).toBe(true);
    expect(s.has('order-1')).toBe(false);
    const iterated = [...s];
    expect(iterated).toHaveLength(keys.length);
    expect(new Set(iterated)).toEqual(new Set(keys));
  });
});

describe('Ledger', () => {
  it('counts deliveries, distinct keys, duplicates, the busiest second and statuses', () => {
    const l = new Ledger();
    const g = l.generation;
    expect(l.recordDelivery('a', 1_000, g)).toEqual({ duplicate: false });
    expect(l.recordDelivery('a', 1_500, g)).toEqual({ duplicate: true });
    expect(l.recordDelivery('b', 1_999, g)).toEqual({ duplicate: false });
    expect(l.recordDelivery('c', 2_000, g)).toEqual({ duplicate: false });
    for (const s of [200, 200, 200, 200, 429, 400]) l.recordStatus(s, g);
    expect(l.snapshot()).toEqual({
      received: 4,
      distinctKeys: 3,
      duplicates: 1,
      maxPerSecond: 3,
      byStatus: { '200': 4, '400': 1, '429': 1 },
      perSecond: [
        { second: 1, count: 3 },
        { second: 2, count: 1 },
      ],
    });
    expect(l.snapshot(true).keys?.sort()).toEqual(['a', 'b', 'c']);
  });

  it('reset clears everything and ignores answers admitted before it', () => {
    const l = new Ledger();
    const before = l.generation;
    l.recordDelivery('a', 0, before);
    l.recordStatus(200, before);
    l.reset();
    expect(l.recordDelivery('a', 0, before)).toBeUndefined();
    expect(l.recordStatus(200, before)).toBe(false);
    expect(l.snapshot()).toEqual({ received: 0, distinctKeys: 0, duplicates: 0, maxPerSecond: 0, byStatus: {}, perSecond: [] });
    expect(l.recordDelivery('a', 0, l.generation)).toEqual({ duplicate: false });
  });

  it('keeps a bounded per-second tail but the all-time maximum', () => {
    const l = new Ledger();
    for (let i = 0; i < 5; i++) l.recordDelivery(`x${i}`, 0, l.generation);
    for (let s = 1; s <= 500; s++) l.recordDelivery(`k${s}`, s * 1000, l.generation);
    const snap = l.snapshot();
    expect(snap.maxPerSecond).toBe(5);
    expect(snap.perSecond).toHaveLength(TAIL_SECONDS);
    expect(snap.perSecond[0].second).toBe(500 - TAIL_SECONDS + 1);
    expect(snap.received).toBe(505);
  });
});

describe('downstream config', () => {
  it('takes defaults, then env vars, then flags', () => {
    expect(loadDownstreamConfig([], {}).config).toEqual({ host: '127.0.0.1', port: 8090, rate: 200, burst: 20, latencyMs: 0, logLevel: 'info' });
    expect(loadDownstreamConfig([], { SPILLWAY_DOWNSTREAM_RATE: '50', SPILLWAY_DOWNSTREAM_LATENCY_MS: '5' }).config).toMatchObject({ rate: 50, latencyMs: 5 });
    expect(loadDownstreamConfig(['--rate', '7.5', '--burst', '3', '--port', '0'], { SPILLWAY_DOWNSTREAM_RATE: '50' }).config).toMatchObject({ rate: 7.5, burst: 3, port: 0 });
  });

  it('reports every bad setting at once', () => {
    let err: unknown;
    try {
      loadDownstreamConfig(['--rate', 'fast', '--burst', '0'], { SPILLWAY_DOWNSTREAM_LATENCY_MS: '-3' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toMatch(/--rate/);
    expect(problems).toMatch(/--burst/);
    expect(problems).toMatch(/SPILLWAY_DOWNSTREAM_LATENCY_MS/);
  });

  it('`spillway downstream` exits 2 on bad settings, prints its config and help', async () => {
    const bad = await run(process.execPath, [spillwayBin, 'downstream', '--port', 'x', '--burst', 'many']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--port/);
    expect(bad.stderr).toMatch(/--burst/);
    const printed = await run(process.execPath, [spillwayBin, 'downstream', '--print-config', '--rate', '30']);
    expect(printed.code).toBe(0);
    expect(JSON.parse(printed.stdout.toString())).toMatchObject({ port: 8090, rate: 30, burst: 20, latencyMs: 0 });
    const help = await run(process.execPath, [spillwayBin, 'downstream', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout.toString()).toMatch(/SPILLWAY_DOWNSTREAM_RATE/);
  });
});
