/**
 * Done marks (real redis-server): the workers write one member per run of consecutive offsets,
 * the pump reads them back as offsets (RedisPumpStore.state, its tick), members of the older
 * one-per-offset form included, and trimming after a commit keeps every run that reaches it.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startRedis, type RedisProcess } from '../../lib/src/testing/processes.ts';
import { DeliveryWrites, type Delivered } from '../src/batch.ts';
import { MAX_BATCH, RedisPumpStore, doneKey, doneOffsets, doneRuns } from '../src/pump.ts';

let redis: RedisProcess;
let client: Redis;
let writes: DeliveryWrites;
let store: RedisPumpStore;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url, { maxRetriesPerRequest: null });
  writes = new DeliveryWrites(client, 'deliveredAt:d', 60, (sec) => `spw:delivered:d:${sec}`);
  store = new RedisPumpStore(client, 'd', 't', (id) => `spw:bull:deliver-d:${id}`);
});
afterAll(async () => {
  await client?.quit();
  await redis?.stop();
});
beforeEach(async () => {
  await client.flushall();
});

describe('done runs', () => {
  it('one member per run of consecutive offsets, at most MAX_BATCH long', () => {
    expect(doneRuns([7, 3, 4, 5, 9, 9])).toEqual([3, '3:5', 7, '7:7', 9, '9:9']);
    const long = doneRuns(Array.from({ length: MAX_BATCH * 2 + 1 }, (_, i) => 100 + i));
    expect(long).toEqual([100, `100:${99 + MAX_BATCH}`, 100 + MAX_BATCH, `${100 + MAX_BATCH}:${99 + 2 * MAX_BATCH}`, 100 + 2 * MAX_BATCH, `${100 + 2 * MAX_BATCH}:${100 + 2 * MAX_BATCH}`]);
    expect(doneRuns([])).toEqual([]);
  });

  it('reads runs and single offsets back within lo..hi', () => {
    expect(doneOffsets(['3:5', '7', '9:20'], 4, 10)).toEqual([4, 5, 7, 9, 10]);
    expect(doneOffsets(['1:2'], 4, 10)).toEqual([]);
  });

  it('delivery writes mark runs per partition; the pump reads them as offsets, old single-offset members too', async () => {
    const items: Delivered[] = [0, 1, 2, 4, 5].map((o) => ({ orderKey: `spw:order:d-${o}`, doneKey: doneKey('d', 't', 0), attempts: 1, offset: o }));
    items.push({ orderKey: 'spw:order:other', doneKey: doneKey('d', 't', 1), attempts: 2, offset: 40 });
    // A re-drive: delivered, but not tracked for offsets.
    items.push({ orderKey: 'spw:order:redriven', doneKey: doneKey('d', 't', 0), attempts: 1, offset: null });
    await writes.delivered.addAll(items);
    expect(await client.zrange(doneKey('d', 't', 0), '0', '-1')).toEqual(['0:2', '4:5']);
    expect(await client.zrange(doneKey('d', 't', 1), '0', '-1')).toEqual(['40:40']);
    expect(await client.hgetall('spw:order:d-4')).toMatchObject({ status: 'delivered', attempts: '1' });
    expect(await client.hget('spw:order:other', 'attempts')).toBe('2');
    expect(await client.hget('spw:order:redriven', 'status')).toBe('delivered');
    expect(await client.ttl('spw:order:d-0')).toBeGreaterThan(0);
    // A member as earlier versions wrote it.
    await client.zadd(doneKey('d', 't', 0), 7, '7');
    expect((await store.state(0, 1, 7)).done).toEqual([1, 2, 4, 5, 7]);
    expect((await store.state(0, 3, 3)).done).toEqual([]);
    expect((await store.state(1, 40, 90)).done).toEqual([40]);
  });

  it('a trim after a commit keeps every run that reaches the commit', async () => {
    const key = doneKey('d', 't', 0);
    await client.zadd(key, ...doneRuns(Array.from({ length: 3 * MAX_BATCH }, (_, i) => i)));
    const commit = 2 * MAX_BATCH + 5;
    await store.trim(0, commit);
    const left = await client.zrange(key, '0', '-1');
    expect(left).toEqual([`${2 * MAX_BATCH}:${3 * MAX_BATCH - 1}`]);
    expect((await store.state(0, commit, commit + 1)).done).toEqual([commit, commit + 1]);
  });
});
