/**
 * LimitedWorker: when the limiter window expires between BullMQ's two clock reads, the worker
 * waits 1 ms, not BullMQ's default 100 ms (the cause of the one-second rate dips); otherwise it
 * wakes 1 ms before the window expires (a timer is late rather than early). The race is
 * made deterministic by giving the worker's two Date.now() reads the values either side of the
 * window's end; the sleep itself is replaced, so nothing here depends on timing.
 */
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startRedis, type RedisProcess } from '../../lib/src/testing/processes.ts';
import { LimitedWorker } from '../src/limited-worker.ts';

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
  it('sleeps 1 ms when the limiter window ends between the two clock reads (BullMQ sleeps 0 || 100 ms)', async () => {
    const fixed = await slept((connection) => new LimitedWorker('q1', async () => undefined, { ...opts, connection }), [1, 0]);
    expect(fixed).toEqual([1]);
    // The upstream behaviour this works around: a delay of 0, which `delay` turns into 100 ms.
    // If this starts failing, BullMQ fixed it and LimitedWorker can go.
    const upstream = await slept((connection) => new Worker('q2', async () => undefined, { ...opts, connection }), [1, 0]);
    expect(upstream).toEqual([0]);
  });

  it('wakes 1 ms before the limiter window expires, and never sleeps less than 1 ms', async () => {
    expect(await slept((connection) => new LimitedWorker('q3', async () => undefined, { ...opts, connection }), [25, 25])).toEqual([24]);
    expect(await slept((connection) => new LimitedWorker('q4', async () => undefined, { ...opts, connection }), [25, 24])).toEqual([23]);
    expect(await slept((connection) => new LimitedWorker('q5', async () => undefined, { ...opts, connection }), [2, 1])).toEqual([1]);
    // BullMQ itself sleeps the whole remaining window.
    expect(await slept((connection) => new Worker('q6', async () => undefined, { ...opts, connection }), [25, 25])).toEqual([25]);
  });
});
