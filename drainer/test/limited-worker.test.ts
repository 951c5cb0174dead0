/**
 * LimitedWorker: when the limiter window expires between BullMQ's two clock reads, the worker
 * yields once and fetches again, not after BullMQ's default 100 ms (the cause of the one-second
 * rate dips); with 1 ms or less left it also only yields (a 1 ms timer fires after 1–2 ms);
 * otherwise it wakes 1 ms before the window expires (a timer is late rather than early). The race is
 * made deterministic by giving the worker's two Date.now() reads the values either side of the
 * window's end; the sleep itself is replaced, so nothing here depends on timing.
 */
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startRedis, type RedisProcess } from '../../lib/src/testing/processes.ts';
import { LimitedWorker, YIELD_DELAY } from '../src/limited-worker.ts';

interface Internals {
  limitUntil: number;
  waitForRateLimit(): Promise<void>;
}

let redis: RedisProcess;
const workers: Worker[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close(true)));
  await redis?.stop();
});

/** What the worker sleeps when its two clock reads are `msLeft[0]` and `msLeft[1]` ms before the limiter window ends. */
async function slept(make: (connection: Redis) => Worker, msLeft: [number, number]): Promise<number[]> {
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const w = make(connection);
  workers.push(w);
  const internals = w as unknown as Internals;
  const end = Date.now() + 60_000;
  internals.limitUntil = end;
  const sleeps: number[] = [];
  vi.spyOn(w, 'delay').mockImplementation(async (ms?: number) => {
    sleeps.push(ms ?? Number.NaN);
  });
  // The first read is the check `limitUntil > Date.now()`, the second the subtraction.
  const now = vi.spyOn(Date, 'now').mockReturnValueOnce(end - msLeft[0]).mockReturnValueOnce(end - msLeft[1]);
  try {
    await internals.waitForRateLimit();
  } finally {
    now.mockRestore();
  }
  return sleeps;
}

const opts = { prefix: 'spw:test', autorun: false };

describe('LimitedWorker', () => {
  it('yields when the limiter window ends between the two clock reads (BullMQ sleeps 0 || 100 ms)', async () => {
    const fixed = await slept((connection) => new LimitedWorker('q1', async () => undefined, { ...opts, connection }), [1, 0]);
    expect(fixed).toEqual([YIELD_DELAY]);
    // The upstream behaviour this works around: a delay of 0, which `delay` turns into 100 ms.
    // If this starts failing, BullMQ fixed it and LimitedWorker can go.
    const upstream = await slept((connection) => new Worker('q2', async () => undefined, { ...opts, connection }), [1, 0]);
    expect(upstream).toEqual([0]);
  });

  it('wakes 1 ms before the limiter window expires, and with 1 ms or less left only yields', async () => {
    expect(await slept((connection) => new LimitedWorker('q3', async () => undefined, { ...opts, connection }), [25, 25])).toEqual([24]);
    expect(await slept((connection) => new LimitedWorker('q4', async () => undefined, { ...opts, connection }), [25, 24])).toEqual([23]);
    expect(await slept((connection) => new LimitedWorker('q5', async () => undefined, { ...opts, connection }), [3, 2])).toEqual([1]);
    expect(await slept((connection) => new LimitedWorker('q7', async () => undefined, { ...opts, connection }), [2, 1])).toEqual([YIELD_DELAY]);
    // BullMQ itself sleeps the whole remaining window.
    expect(await slept((connection) => new Worker('q6', async () => undefined, { ...opts, connection }), [25, 25])).toEqual([25]);
  });

  it('YIELD_DELAY yields without a timer; other delays are BullMQ\'s timers', async () => {
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const w = new LimitedWorker('q8', async () => undefined, { ...opts, connection });
    workers.push(w);
    const timers = vi.spyOn(globalThis, 'setTimeout');
    try {
      await w.delay(YIELD_DELAY);
      expect(timers).not.toHaveBeenCalled();
      await w.delay(5);
      expect(timers).toHaveBeenCalledWith(expect.any(Function), 5);
    } finally {
      timers.mockRestore();
    }
  });
});
