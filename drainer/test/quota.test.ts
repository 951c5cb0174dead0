/**
 * The second's quota of starts (DeliveryWrites.start, real redis-server): a job may start while
 * its middle is within the quota of the second its orders are expected to arrive in; a job that
 * is not is refused and its orders are not counted; once a second has its quota, BullMQ's
 * limiter key is held closed until that second ends, the way Queue.rateLimit closes it; a longer
 * hold is never shortened; without a quota nothing is counted or touched. The same call answers
 * the job's orders' statuses.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startRedis, type RedisProcess } from '../../lib/src/testing/processes.ts';
import { DELIVERED_HERE, DeliveryWrites } from '../src/batch.ts';

const CLOSED = '9007199254740991'; // what Queue.rateLimit writes: more than any window's max
const LIMITER = 'spw:bull:deliver-q:limiter';
const started = (sec: number) => `spw:started:q:${sec}`;

let redis: RedisProcess;
let client: Redis;
let quota = 0;
let writes: DeliveryWrites;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url, { maxRetriesPerRequest: null });
  writes = new DeliveryWrites(client, 'deliveredAt:q', 60, (sec) => `spw:delivered:q:${sec}`, { limiterKey: LIMITER, startedKey: started, orders: () => quota });
});
afterAll(async () => {
  await client?.quit();
  await redis?.stop();
});

/** Starts each test early in a wall-clock second, so its calls all fall in one. */
beforeEach(async () => {
  await client.flushall();
  const ms = Date.now() % 1000;
  if (ms > 300) await new Promise((r) => setTimeout(r, 1005 - ms));
});

const count = async (sec: number) => Number((await client.get(started(sec))) ?? 0);

let nextOrder = 0;
/** The order keys of a job of `n` orders nobody has seen: their statuses are all ''. */
const job = (n: number) => Array.from({ length: n }, () => `spw:order:q-${nextOrder++}`);
/** Whether the job may start (start answers its statuses, or null). */
const starts = async (n: number, lead: number) => {
  const statuses = await writes.start(job(n), lead);
  if (statuses !== null) expect(statuses).toEqual(new Array(n).fill(''));
  return statuses !== null;
};

describe('second quota of starts', () => {
  it('lets jobs start up to the quota, then closes the limiter until the second ends', async () => {
    quota = 100;
    const at = Date.now();
    const sec = Math.floor(at / 1000);
    for (let i = 0; i < 3; i++) expect(await starts(25, 0)).toBe(true);
    expect(await client.exists(LIMITER)).toBe(0);
    expect(await starts(25, 0)).toBe(true); // 100: the quota
    expect(await client.get(LIMITER)).toBe(CLOSED);
    const ttl = await client.pttl(LIMITER);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1000 - (at % 1000));
    expect(await count(sec)).toBe(100);
    // A job past the quota is refused and not counted.
    expect(await starts(25, 0)).toBe(false);
    expect(await count(sec)).toBe(100);
  });

  it('takes a job whose middle is within the quota, and refuses one whose middle is past it', async () => {
    quota = 100;
    const sec = Math.floor(Date.now() / 1000);
    expect(await starts(80, 0)).toBe(true);
    expect(await starts(40, 0)).toBe(true); // 80 + 20 = 100: its middle is at the quota
    quota = 130;
    expect(await starts(22, 0)).toBe(false); // 120 + 11 = 131 > 130
    expect(await count(sec)).toBe(120);
    expect(await starts(20, 0)).toBe(true); // 120 + 10 = 130
    expect(await count(sec)).toBe(140);
  });

  it('counts a job against the second its orders arrive in, and closes the limiter until that second ends', async () => {
    quota = 50;
    const at = Date.now();
    const sec = Math.floor(at / 1000);
    const lead = 1000 - (at % 1000) + 100; // arrives 100 ms into the next second
    expect(await starts(50, lead)).toBe(true);
    expect(await count(sec)).toBe(0);
    expect(await count(sec + 1)).toBe(50);
    // Held until the second it counts against ends, not `lead` ms before: a job started then
    // would have its first orders arrive before the end.
    const ttl = await client.pttl(LIMITER);
    expect(ttl).toBeLessThanOrEqual((sec + 2) * 1000 - at);
    expect(ttl).toBeGreaterThan((sec + 2) * 1000 - at - 200);
  });

  it('never shortens a longer hold (a limiter window keeps its duration)', async () => {
    quota = 2;
    await client.set(LIMITER, '1', 'PX', 5000);
    expect(await starts(2, 0)).toBe(true);
    expect(await starts(2, 0)).toBe(false);
    expect(await client.get(LIMITER)).toBe('1');
    expect(await client.pttl(LIMITER)).toBeGreaterThan(1000);
  });

  it('replaces a window ending before the second does', async () => {
    quota = 2;
    await client.set(LIMITER, '1', 'PX', 20);
    expect(await starts(2, 0)).toBe(true);
    expect(await client.get(LIMITER)).toBe(CLOSED);
    expect(await client.pttl(LIMITER)).toBeGreaterThan(20);
  });

  it("answers the orders' statuses with the start, in the order of the keys", async () => {
    quota = 100;
    const sec = Math.floor(Date.now() / 1000);
    await client.hset('spw:order:a', 'status', 'accepted');
    await client.hset('spw:order:b', 'status', 'delivered', 'deliveredAt:q', '1');
    await client.hset('spw:order:c', 'status', 'delivered', 'deliveredAt:other', '1');
    await client.hset('spw:order:d', 'status', 'rejected');
    const keys = ['spw:order:a', 'spw:order:b', 'spw:order:c', 'spw:order:d', 'spw:order:none'];
    expect(await writes.start(keys, 0)).toEqual(['accepted', DELIVERED_HERE, 'delivered', 'rejected', '']);
    // The same without a quota (read by statusOf, batched with others in the same turn).
    quota = 0;
    expect(await Promise.all([writes.start(keys, 0), writes.start(keys.slice(3), 0)])).toEqual([
      ['accepted', DELIVERED_HERE, 'delivered', 'rejected', ''],
      ['rejected', ''],
    ]);
    // Refused: null, and nothing counted (5 + 98 started; 103 + 2.5 is past the quota).
    quota = 100;
    expect(await starts(98, 0)).toBe(true);
    expect(await writes.start(keys, 0)).toBeNull();
    expect(await count(sec)).toBe(103);
  });

  it('counts nothing and leaves the limiter alone without a quota', async () => {
    quota = 0;
    const sec = Math.floor(Date.now() / 1000);
    for (let i = 0; i < 5; i++) expect(await starts(50, 0)).toBe(true);
    expect(await client.exists(LIMITER)).toBe(0);
    expect(await count(sec)).toBe(0);
  });

  it('delivery writes still count a second\'s deliveries, and no longer touch the limiter', async () => {
    quota = 1;
    const sec = Math.floor(Date.now() / 1000);
    await writes.delivered.addAll(Array.from({ length: 3 }, (_, i) => ({ orderKey: `spw:order:o-${i}`, doneKey: 'spw:done:q:t:0', attempts: 1, offset: i })));
    expect(Number(await client.get(`spw:delivered:q:${sec}`))).toBe(3);
    expect(await client.hget('spw:order:o-2', 'status')).toBe('delivered');
    expect(await client.zrange('spw:done:q:t:0', '0', '-1')).toEqual(['0:2']);
    expect(await client.exists(LIMITER)).toBe(0);
  });
});
