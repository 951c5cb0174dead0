/**
 * The second's quota in the workers' delivery writes (DeliveryWrites, real redis-server): once the
 * per-second count reaches the quota, BullMQ's limiter key is held closed until the second ends,
 * the way Queue.rateLimit closes it; a longer hold is never shortened; without a quota the key is
 * never touched.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startRedis, type RedisProcess } from '../../lib/src/testing/processes.ts';
import { DeliveryWrites, type Delivered } from '../src/batch.ts';

const CLOSED = '9007199254740991'; // what Queue.rateLimit writes: more than any window's max
const LIMITER = 'spw:bull:deliver-q:limiter';

let redis: RedisProcess;
let client: Redis;
let quota = 0;
let writes: DeliveryWrites;
let next = 0;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url, { maxRetriesPerRequest: null });
  writes = new DeliveryWrites(client, 'deliveredAt:q', 60, (sec) => `spw:delivered:q:${sec}`, { limiterKey: LIMITER, orders: () => quota });
});
afterAll(async () => {
  await client?.quit();
  await redis?.stop();
});

/** Starts each test early in a wall-clock second, so its writes all fall in one. */
beforeEach(async () => {
  await client.flushall();
  const ms = Date.now() % 1000;
  if (ms > 300) await new Promise((r) => setTimeout(r, 1005 - ms));
});

function orders(n: number): Delivered[] {
  return Array.from({ length: n }, () => {
    const i = next++;
    return { orderKey: `spw:order:o-${i}`, doneKey: 'spw:done:q:t:0', attempts: 1, offset: i };
  });
}

describe('second quota', () => {
  it('closes the limiter until the second ends once the count reaches the quota', async () => {
    quota = 5;
    await writes.delivered.addAll(orders(3));
    expect(await client.exists(LIMITER)).toBe(0);
    const at = Date.now();
    await writes.delivered.addAll(orders(2));
    expect(await client.get(LIMITER)).toBe(CLOSED);
    const ttl = await client.pttl(LIMITER);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1000 - (at % 1000));
    // The orders of the write that reached the quota are recorded like any other.
    expect(await client.hget(`spw:order:o-${next - 1}`, 'status')).toBe('delivered');
    expect(Number(await client.get(`spw:delivered:q:${Math.floor(at / 1000)}`))).toBe(5);
  });

  it('never shortens a longer hold (a limiter window keeps its duration)', async () => {
    quota = 2;
    await client.set(LIMITER, '1', 'PX', 5000);
    await writes.delivered.addAll(orders(3));
    expect(await client.get(LIMITER)).toBe('1');
    expect(await client.pttl(LIMITER)).toBeGreaterThan(1000);
  });

  it('replaces a window ending before the second does', async () => {
    quota = 2;
    await client.set(LIMITER, '1', 'PX', 20);
    await writes.delivered.addAll(orders(2));
    expect(await client.get(LIMITER)).toBe(CLOSED);
    expect(await client.pttl(LIMITER)).toBeGreaterThan(20);
  });

  it('leaves the limiter alone without a quota', async () => {
    quota = 0;
    await writes.delivered.addAll(orders(50));
    expect(await client.exists(LIMITER)).toBe(0);
  });
});
