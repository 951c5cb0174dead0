/**
 * Dead letters and retries. Poison orders (a permanent 400) go to the durable DLQ topic with
 * reason and attempts after one attempt, while the orders behind them on the same partition are
 * delivered; transient 500s and a down period (503 + Retry-After) are retried until delivered.
 * At the end, accepted = delivered + dead-lettered, counted independently from the simulator's
 * ledger and the DLQ topic. Re-drive through the gateway's admin API delivers dead letters once
 * the downstream is fixed and takes them out of the DLQ index.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../lib/src/redis-keys.ts';
import { startGatewayProcess, waitFor, type GatewayProcess } from '../../lib/src/testing/processes.ts';
import { Stack, makeOrders, metricValue, scrape, sleep, writeDrainerConfig } from './support/harness.ts';

const DLQ_TOPIC = 'orders.dlq';
const ADMIN_TOKEN = 'drainer-test-admin';

const stack = new Stack();

beforeAll(async () => {
  await stack.start();
});

afterAll(async () => {
  await stack.stop();
});

describe('dead letters and retries', () => {
  it('dead-letters poison orders after one attempt, retries transient failures, and accounts for every order', async () => {
    const topic = 'dlq-mixed';
    const name = 'mixed';
    await stack.createTopic(topic, 4);
    const sim = await stack.simulator({ rate: 1000, burst: 100 });
    // 4 SKUs over 4 partitions: every partition carries poison orders with good ones behind them.
    const orders = makeOrders(name, 400, 4);
    const poison = new Set<string>();
    orders.forEach((o, i) => {
      if (i % 10 === 3) {
        o.metadata = { simulate: '400' };
        poison.add(o.orderId);
      }
    });
    await stack.produce(topic, orders);
    await sim.control({ failStatus: 500, failRatio: 0.2 });
    const config = writeDrainerConfig([{ name, url: sim.ordersUrl, topic, rate: 100, burst: 10, retry: { attempts: 20, backoffMs: 100, jitter: 0.5 } }]);
    const drainer = await stack.drainer(config);
    try {
      // A down period mid-drain: 503 + Retry-After is pushback, not a failure.
      await waitFor(async () => (await sim.stats()).received >= 50, { timeoutMs: 60_000, what: 'deliveries to start' });
      await sim.control({ down: true });
      await sleep(2500);
      await sim.control({ down: false });

      const dead = () => stack.redis.zcard(keys.dlqIndex(name));
      await waitFor(async () => (await sim.stats()).distinctKeys + (await dead()) >= orders.length, { timeoutMs: 90_000, intervalMs: 250, what: 'every order delivered or dead-lettered' });
      const s = await sim.stats(true);
      const dlq = (await stack.readTopic(DLQ_TOPIC)).filter((r) => r.headers.downstream === name);
      const dlqIds = new Set(dlq.map((r) => r.key));
      console.log(`dlq: produced ${orders.length}, delivered ${s.distinctKeys} (+${s.duplicates} duplicates), dead-lettered ${dlqIds.size}; byStatus ${JSON.stringify(s.byStatus)}`);

      // Accepted = delivered + dead-lettered, with no overlap.
      expect(s.distinctKeys + dlqIds.size).toBe(orders.length);
      expect(new Set(s.keys)).toEqual(new Set(orders.filter((o) => !poison.has(o.orderId)).map((o) => o.orderId)));
      expect(dlqIds).toEqual(poison);
      // Transient faults happened and were retried; the down period was answered 503.
      expect(s.byStatus['500'] ?? 0).toBeGreaterThan(0);
      expect(s.byStatus['503'] ?? 0).toBeGreaterThan(0);
      // Each poison order was tried exactly once (the simulator answered 400 once per order).
      expect(s.byStatus['400']).toBe(poison.size);
      for (const r of dlq) {
        expect(r.headers).toMatchObject({ reason: 'HTTP 400', attempts: '1', downstream: name, 'source-topic': topic });
        expect(JSON.parse(r.value)).toMatchObject({ orderId: r.key, metadata: { simulate: '400' } });
      }
      const statuses = await Promise.all(orders.map((o) => stack.redis.hget(keys.order(o.orderId), 'status')));
      orders.forEach((o, i) => expect([o.orderId, statuses[i]]).toEqual([o.orderId, poison.has(o.orderId) ? 'dead_lettered' : 'delivered']));

      // Nothing holds the partitions: committed offsets reach the end (backlog 0).
      await waitFor(async () => (await stack.redis.hget(keys.backlog(name), 'backlog')) === '0', { timeoutMs: 20_000, what: 'backlog 0' });
      const m = await scrape(drainer.metricsUrl);
      expect(metricValue(m, 'spillway_drainer_dead_letters_total', { downstream: name })).toBe(poison.size);
      expect(metricValue(m, 'spillway_drainer_retries_total', { downstream: name })).toBeGreaterThan(0);
    } finally {
      await drainer.kill('SIGTERM');
    }
  }, 150_000);

  it('dead-letters an order whose retries are exhausted, with the reason and the attempts made', async () => {
    const topic = 'dlq-exhausted';
    const name = 'exhausted';
    await stack.createTopic(topic, 2);
    const sim = await stack.simulator({ rate: 1000, burst: 100 });
    const orders = makeOrders(name, 30, 2);
    const failing = new Set<string>();
    orders.forEach((o, i) => {
      if (i % 6 === 0) {
        o.metadata = { simulate: '500' };
        failing.add(o.orderId);
      }
    });
    await stack.produce(topic, orders);
    const config = writeDrainerConfig([{ name, url: sim.ordersUrl, topic, rate: 100, burst: 10, retry: { attempts: 3, backoffMs: 100, jitter: 0 } }]);
    const drainer = await stack.drainer(config);
    try {
      await waitFor(async () => (await sim.stats()).distinctKeys === orders.length - failing.size && (await stack.redis.zcard(keys.dlqIndex(name))) === failing.size, {
        timeoutMs: 60_000,
        what: 'good orders delivered and failing ones dead-lettered',
      });
      const s = await sim.stats();
      // Three attempts each, then the dead letter: no fourth.
      expect(s.byStatus['500']).toBe(failing.size * 3);
      const dlq = (await stack.readTopic(DLQ_TOPIC)).filter((r) => r.headers.downstream === name);
      expect(new Set(dlq.map((r) => r.key))).toEqual(failing);
      for (const r of dlq) expect(r.headers).toMatchObject({ reason: 'retries exhausted: HTTP 500', attempts: '3', 'source-topic': topic });
      for (const id of failing) expect(await stack.redis.hgetall(keys.order(id))).toMatchObject({ status: 'dead_lettered', attempts: '3' });
    } finally {
      await drainer.kill('SIGTERM');
    }
  }, 90_000);

  it('re-drives dead letters through the gateway admin API once the downstream is fixed', async () => {
    const name = 'redrive';
    const sim = await stack.simulator({ rate: 1000, burst: 100 });
    let gateway: GatewayProcess | undefined;
    try {
      gateway = await startGatewayProcess({
        redisUrl: stack.redisUrl,
        kafkaBrokers: stack.broker.bootstrap,
        args: ['--rate-limit', '0', '--orders-partitions', '4'],
        env: { SPILLWAY_ADMIN_TOKEN: ADMIN_TOKEN },
      });
      const gw = gateway.url;
      const auth = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
      const ids: string[] = [];
      for (let i = 0; i < 40; i++) {
        const res = await fetch(`${gw}/v1/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sku: `RD-${i % 4}`, userId: `rd-${i}`, quantity: 1, priceCents: 500 }) });
        expect(res.status).toBe(202);
        ids.push(((await res.json()) as { orderId: string }).orderId);
      }
      const poison = ids.filter((_, i) => i % 4 === 1);
      await sim.control({ failKeys: poison, failStatus: 422 });
      const config = writeDrainerConfig([{ name, url: sim.ordersUrl, topic: 'orders', rate: 100, burst: 10 }]);
      const drainer = await stack.drainer(config);

      const status = async (id: string) => ((await (await fetch(`${gw}/v1/orders/${id}`)).json()) as { status: string; reason?: string; attempts?: number });
      await waitFor(async () => (await sim.stats()).distinctKeys === ids.length - poison.length && (await stack.redis.zcard(keys.dlqIndex(name))) === poison.length, {
        timeoutMs: 60_000,
        what: 'good orders delivered and poison dead-lettered',
      });
      for (const id of poison) expect(await status(id)).toMatchObject({ status: 'dead_lettered', reason: 'HTTP 422', attempts: 1 });
      const listed = (await (await fetch(`${gw}/v1/admin/downstreams/${name}/dlq`, { headers: auth })).json()) as { total: number; items: { orderId: string }[] };
      expect(listed.total).toBe(poison.length);
      expect(new Set(listed.items.map((x) => x.orderId))).toEqual(new Set(poison));

      // Fix the downstream, then re-drive everything in the DLQ.
      await sim.control({ failKeys: [] });
      const rd = await fetch(`${gw}/v1/admin/downstreams/${name}/dlq/redrive`, { method: 'POST', headers: auth, body: JSON.stringify({ all: true }) });
      expect(rd.status).toBe(202);
      expect(await rd.json()).toMatchObject({ queued: poison.length, unknown: [] });
      await waitFor(async () => (await sim.stats()).distinctKeys === ids.length, { timeoutMs: 30_000, what: 're-driven orders delivered' });
      await waitFor(async () => (await stack.redis.zcard(keys.dlqIndex(name))) === 0, { timeoutMs: 10_000, what: 'DLQ index emptied' });
      for (const id of poison) expect((await status(id)).status).toBe('delivered');
      const after = (await (await fetch(`${gw}/v1/admin/downstreams/${name}`, { headers: auth })).json()) as { deadLetters: number };
      expect(after.deadLetters).toBe(0);
      expect(await stack.redis.hlen(keys.dlqItems(name))).toBe(0);
      const s = await sim.stats(true);
      expect(new Set(s.keys)).toEqual(new Set(ids));
      expect(s.duplicates).toBe(0);
      const m = await scrape(drainer.metricsUrl);
      expect(metricValue(m, 'spillway_drainer_redriven_total', { downstream: name })).toBe(poison.length);
      await drainer.kill('SIGTERM');
    } finally {
      await gateway?.kill('SIGTERM');
    }
  }, 120_000);
});
