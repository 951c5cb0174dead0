/**
 * Jobs that cannot be finished for reasons other than the downstream are put back for a later
 * try without using an attempt, never left as failed jobs holding their orders:
 * - a dead letter that cannot be written (here: the DLQ topic is gone and the broker does not
 *   auto-create topics): the orders behind it are delivered, and once the topic is back the
 *   poison orders are dead-lettered, each exactly once, with the attempts they really used (1);
 * - an error while processing the job (here: Redis answers WRONGTYPE for one order's status).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../lib/src/redis-keys.ts';
import { waitFor } from '../../lib/src/testing/processes.ts';
import { Stack, makeOrders, metricValue, scrape, sleep, writeDrainerConfig } from './support/harness.ts';

const stack = new Stack();
const DLQ = 'deferral.dlq';

beforeAll(async () => {
  await stack.start({ brokerArgs: ['--auto-create-topics', 'false'] });
});

afterAll(async () => {
  await stack.stop();
});

describe('dead letters while the DLQ cannot be written', () => {
  it('keeps the poison orders (no attempt used), delivers the rest, and dead-letters them once the DLQ is back', async () => {
    const topic = 'deferral-src';
    const name = 'deferral';
    await stack.createTopic(topic, 2);
    const sim = await stack.simulator({ rate: 1000, burst: 100 });
    const config = writeDrainerConfig([{ name, url: sim.ordersUrl, topic, rate: 100, burst: 10, retry: { attempts: 3, backoffMs: 100, jitter: 0 } }]);
    const drainer = await stack.drainer(config, { dlqTopic: DLQ });
    try {
      // The drainer created the DLQ topic at start; take it away before any order arrives.
      await waitFor(async () => (await stack.admin.listTopics()).includes(DLQ), { timeoutMs: 20_000, what: 'the drainer to create the DLQ topic' });
      await stack.admin.deleteTopics({ topics: [DLQ] });
      const orders = makeOrders(name, 40, 2);
      const poison = new Set<string>();
      orders.forEach((o, i) => {
        if (i % 8 === 5) {
          o.metadata = { simulate: '400' };
          poison.add(o.orderId);
        }
      });
      await stack.produce(topic, orders);

      // The good orders are delivered; the poison ones are kept, neither dead-lettered nor lost.
      await waitFor(async () => (await sim.stats()).distinctKeys === orders.length - poison.size, { timeoutMs: 60_000, what: 'the good orders delivered' });
      await waitFor(() => drainer.logs.some((l) => l.msg === 'dead letter failed; the order is kept for a later try'), { timeoutMs: 90_000, what: 'a dead letter to fail' });
      await sleep(1000);
      expect(await stack.redis.zcard(keys.dlqIndex(name))).toBe(0);
      for (const id of poison) expect(await stack.redis.hget(keys.order(id), 'status')).not.toBe('dead_lettered');
      // The partitions are held below the poison orders: the backlog is not 0.
      const backlog = await stack.redis.hget(keys.backlog(name), 'backlog');
      expect(Number(backlog)).toBeGreaterThan(0);

      // The DLQ is back: each poison order is dead-lettered once, with the one attempt it used.
      await stack.admin.createTopics({ topics: [{ topic: DLQ, numPartitions: 1 }], waitForLeaders: true });
      await waitFor(async () => (await stack.redis.zcard(keys.dlqIndex(name))) === poison.size, { timeoutMs: 90_000, intervalMs: 250, what: 'the poison orders dead-lettered' });
      const dlq = (await stack.readTopic(DLQ)).filter((r) => r.headers.downstream === name);
      expect(dlq.map((r) => r.key).sort()).toEqual([...poison].sort());
      for (const r of dlq) expect(r.headers).toMatchObject({ reason: 'HTTP 400', attempts: '1', 'source-topic': topic });
      for (const id of poison) expect(await stack.redis.hgetall(keys.order(id))).toMatchObject({ status: 'dead_lettered', attempts: '1' });
      // Nothing else was dead-lettered or lost, and the partitions move on.
      const s = await sim.stats();
      expect(s.distinctKeys + poison.size).toBe(orders.length);
      await waitFor(async () => (await stack.redis.hget(keys.backlog(name), 'backlog')) === '0', { timeoutMs: 30_000, what: 'backlog 0' });
    } finally {
      await drainer.kill('SIGTERM');
    }
  }, 240_000);

  it('a job whose processing throws (Redis WRONGTYPE on an order) is kept, not failed, and delivered once the cause is gone', async () => {
    const topic = 'deferral-error';
    const name = 'deferral-error';
    await stack.createTopic(topic, 2);
    const sim = await stack.simulator({ rate: 1000, burst: 100 });
    const orders = makeOrders(name, 30, 2);
    const broken = orders[7];
    // The order's status record is not a hash: the status read fails for this order's job.
    await stack.redis.set(keys.order(broken.orderId), 'not-a-hash');
    await stack.produce(topic, orders);
    // Two attempts with short backoff: a job failing for good would do so within a second.
    const config = writeDrainerConfig([{ name, url: sim.ordersUrl, topic, rate: 100, burst: 10, retry: { attempts: 2, backoffMs: 50, jitter: 0 } }]);
    const drainer = await stack.drainer(config, { dlqTopic: DLQ });
    try {
      await waitFor(async () => (await sim.stats()).distinctKeys === orders.length - 1, { timeoutMs: 60_000, what: 'every other order delivered' });
      await waitFor(() => drainer.logs.filter((l) => l.msg === 'job could not be processed; it is kept for a later try').length >= 2, { timeoutMs: 30_000, what: 'the job put back twice' });
      // Past both attempts and their backoff: still not failed, still held.
      expect(await stack.redis.zcard(`spw:bull:deliver-${name}:failed`)).toBe(0);
      expect((await sim.stats(true)).keys).not.toContain(broken.orderId);
      const m = await scrape(drainer.metricsUrl);
      expect(metricValue(m, 'spillway_drainer_jobs_deferred_total', { downstream: name, reason: 'processing_error' })).toBeGreaterThanOrEqual(2);

      // The cause is gone: the next try delivers it, and the partitions move on.
      await stack.redis.del(keys.order(broken.orderId));
      await waitFor(async () => (await sim.stats()).distinctKeys === orders.length, { timeoutMs: 30_000, what: 'the kept order delivered' });
      expect(await stack.redis.hget(keys.order(broken.orderId), 'status')).toBe('delivered');
      expect(await stack.redis.zcard(`spw:bull:deliver-${name}:failed`)).toBe(0);
      expect(await stack.redis.zcard(keys.dlqIndex(name))).toBe(0);
      await waitFor(async () => (await stack.redis.hget(keys.backlog(name), 'backlog')) === '0', { timeoutMs: 30_000, what: 'backlog 0' });
    } finally {
      await drainer.kill('SIGTERM');
    }
  }, 180_000);
});
