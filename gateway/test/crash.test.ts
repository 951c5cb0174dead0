/**
 * Crash safety of the 202: the broker is SIGKILLed while orders are in flight and restarted on
 * the same data dir; every order answered 202 must be in the log at the partition/offset
 * answered, and nothing in the log may be an order that was neither answered 202 nor marked
 * rejected. A gateway stopped with SIGTERM mid-load finishes what it had taken and exits 0.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../lib/src/redis-keys.ts';
import { startBrokerProcess, startGatewayProcess, startRedis, tempDir, waitFor, type BrokerProcess, type GatewayProcess, type RedisProcess } from '../../lib/src/testing/processes.ts';
import { HttpClient, parseJson, type ErrorBody } from './support/http.ts';
import { range, readOrders, type LoggedOrder } from './support/log.ts';

const ADMIN = 'crash-admin-token';
const PARTITIONS = 12;
const SKUS = range(12).map((i) => `CRASH-${i}`);
const STOCK = 1_000_000;

let redisProc: RedisProcess;
let broker: BrokerProcess;
const gateways: GatewayProcess[] = [];
let redis: Redis;

beforeAll(async () => {
  [redisProc, broker] = await Promise.all([startRedis(), startBrokerProcess({ dataDir: tempDir('gw-crash') })]);
  redis = new Redis(redisProc.url);
});

afterAll(async () => {
  redis?.disconnect();
  await Promise.all(gateways.map((g) => g.kill('SIGKILL')));
  await broker?.kill('SIGKILL');
  await redisProc?.stop();
});

interface Outcome {
  sku: string;
  userId: string;
  status: number | 'error';
  code?: string;
  orderId?: string;
  partition?: number;
  offset?: number;
  /** Time the request was sent, relative to process start (performance.now()). */
  sentAt: number;
}

/** Posts orders from `concurrency` loops until stop() is called; records every outcome. */
function loadGenerator(client: HttpClient, concurrency: number, prefix: string) {
  const outcomes: Outcome[] = [];
  let stopped = false;
  let n = 0;
  const loops = range(concurrency).map(async () => {
    while (!stopped) {
      const i = n++;
      const sku = SKUS[i % SKUS.length];
      const userId = `${prefix}-${i}`;
      const sentAt = performance.now();
      try {
        const a = await client.postJson('/v1/orders', { sku, userId, quantity: 1, priceCents: 100 });
        if (a.status === 202) {
          const b = parseJson<{ orderId: string; partition: number; offset: number }>(a.text);
          outcomes.push({ sku, userId, status: 202, orderId: b.orderId, partition: b.partition, offset: b.offset, sentAt });
        } else {
          outcomes.push({ sku, userId, status: a.status, code: parseJson<ErrorBody>(a.text).error.code, sentAt });
        }
      } catch {
        outcomes.push({ sku, userId, status: 'error', sentAt });
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });
  return {
    outcomes,
    accepted: () => outcomes.filter((o) => o.status === 202).length,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

function tally(outcomes: Outcome[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of outcomes) {
    const k = o.code === undefined ? String(o.status) : `${o.status} ${o.code}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

/**
 * Every 202 is in the log at its place; every other record of this test (users named with
 * `userPrefix`) is marked rejected (an append that timed out but landed), and none is there twice.
 */
async function checkLog(accepted: Outcome[], userPrefix: string): Promise<LoggedOrder[]> {
  const logged = (await readOrders(broker.port, 'orders', range(PARTITIONS))).filter((r) => r.order.userId.startsWith(userPrefix));
  const byPlace = new Map(logged.map((r) => [`${r.partition}:${r.offset}`, r]));
  for (const a of accepted) {
    const r = byPlace.get(`${a.partition}:${a.offset}`);
    expect(r?.order.orderId, `202 for ${a.orderId} at ${a.partition}:${a.offset}`).toBe(a.orderId);
    expect(r?.key).toBe(a.sku);
    expect(r?.order.userId).toBe(a.userId);
  }
  const acceptedIds = new Set(accepted.map((a) => a.orderId));
  const others = logged.filter((r) => !acceptedIds.has(r.order.orderId));
  const pipe = redis.pipeline();
  for (const r of others) pipe.hget(keys.order(r.order.orderId), 'status');
  const statuses = ((await pipe.exec()) ?? []).map(([, v]) => v);
  others.forEach((r, i) => expect(statuses[i], `unanswered order ${r.order.orderId} in the log`).toBe('rejected'));
  expect(new Set(logged.map((r) => r.order.orderId)).size, 'no order twice in the log').toBe(logged.length);
  return logged;
}

async function loadSkus(client: HttpClient): Promise<void> {
  const res = await client.request('PUT', '/v1/admin/skus', {
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ skus: SKUS.map((sku) => ({ sku, stock: STOCK })) }),
  });
  expect(res.status, res.text).toBe(200);
}

/** Sold per SKU (stock - remaining) from Redis. */
async function soldPerSku(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const sku of SKUS) out.set(sku, STOCK - Number(await redis.hget(keys.sku(sku), 'remaining')));
  return out;
}

describe('crash safety of the 202', () => {
  it('keeps every 202 in the log when the broker is SIGKILLed mid-load and restarted on the same data dir', async () => {
    const gw = await startGatewayProcess({ redisUrl: redisProc.url, kafkaBrokers: broker.bootstrap, args: ['--admin-token', ADMIN, '--rate-limit', '0', '--append-timeout-ms', '3000'] });
    gateways.push(gw);
    const client = new HttpClient(gw.url, 32);
    await loadSkus(client);
    const load = loadGenerator(client, 32, 'crash');
    try {
      const port = broker.port;
      for (let cycle = 0; cycle < 2; cycle++) {
        const before = load.accepted();
        await waitFor(() => load.accepted() >= before + 300, { what: `300 more 202s (cycle ${cycle})`, timeoutMs: 30_000 });
        await broker.kill('SIGKILL');
        // Orders keep coming while the broker is down.
        const down = load.outcomes.length;
        await waitFor(() => load.outcomes.slice(down).some((o) => o.status === 503), { what: '503s while the broker is down', timeoutMs: 10_000 });
        broker = await startBrokerProcess({ dataDir: broker.dataDir, args: ['--port', String(port)] });
        expect(broker.port).toBe(port);
      }
      const before = load.accepted();
      await waitFor(() => load.accepted() >= before + 300, { what: '202s after the last restart', timeoutMs: 30_000 });
      await load.stop();

      const outcomes = load.outcomes;
      const counts = tally(outcomes);
      // Only two answers are possible: durable, or unavailable (with everything given back).
      expect(Object.keys(counts).sort()).toEqual(['202', '503 BUFFER_UNAVAILABLE']);
      const accepted = outcomes.filter((o) => o.status === 202);
      await checkLog(accepted, 'crash-');

      // Stock accounting: what was taken equals what was answered 202; 503s gave theirs back.
      const sold = await soldPerSku();
      for (const sku of SKUS) expect(sold.get(sku), sku).toBe(accepted.filter((a) => a.sku === sku).length);
      const statuses = await Promise.all(accepted.slice(0, 200).map((a) => redis.hget(keys.order(a.orderId as string), 'status')));
      expect(new Set(statuses)).toEqual(new Set(['accepted']));
      console.info(`crash: ${JSON.stringify(counts)}`);
    } finally {
      await load.stop();
      client.close();
    }
  }, 120_000);

  it('finishes in-flight orders on SIGTERM (their 202s are in the log) and exits 0', async () => {
    // A linger makes every order wait in the gateway, so requests are surely in flight at SIGTERM.
    const gw = await startGatewayProcess({ redisUrl: redisProc.url, kafkaBrokers: broker.bootstrap, args: ['--rate-limit', '0', '--linger-ms', '250'] });
    gateways.push(gw);
    const client = new HttpClient(gw.url, 32);
    try {
      const load = loadGenerator(client, 32, 'sigterm');
      await waitFor(() => load.accepted() >= 100, { what: '100 202s', timeoutMs: 20_000 });
      // Stop sending new requests, let the last ones reach the gateway, then SIGTERM it while
      // they wait for their append.
      const stopping = load.stop();
      await new Promise((r) => setTimeout(r, 50));
      const inFlightAtSignal = load.outcomes.length;
      const exited = gw.kill('SIGTERM');
      await stopping;
      client.close();
      expect(await exited).toBe(0);

      const late = load.outcomes.slice(inFlightAtSignal);
      expect(late.length, 'requests answered after SIGTERM').toBeGreaterThan(0);
      expect(tally(late)).toEqual({ '202': late.length });
      expect(tally(load.outcomes)).toEqual({ '202': load.outcomes.length });
      expect(gw.logs.some((l) => l.msg === 'shutting down')).toBe(true);
      await checkLog(load.outcomes, 'sigterm-');
    } finally {
      client.close();
    }
  });
});
