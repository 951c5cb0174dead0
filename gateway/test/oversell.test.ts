/**
 * No overselling under concurrency: two gateway processes share one Redis and one broker and
 * take a flash sale's worth of concurrent orders. Stock, per-user limits and idempotency are
 * decided in one atomic Redis script, so the counts must be exact, and the log must hold
 * exactly the orders that were answered 202, at the places answered.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../lib/src/redis-keys.ts';
import { startBrokerProcess, startGatewayProcess, startRedis, type BrokerProcess, type GatewayProcess, type RedisProcess } from '../../lib/src/testing/processes.ts';
import { partitionForKey } from '../src/publisher.ts';
import { HttpClient, mapLimit, parseJson, type ErrorBody, type HttpAnswer } from './support/http.ts';
import { range, readOrders } from './support/log.ts';

const ADMIN = 'oversell-admin-token';
const PARTITIONS = 12;

let redisProc: RedisProcess;
let broker: BrokerProcess;
let gateways: GatewayProcess[] = [];
let clients: HttpClient[] = [];
let redis: Redis;

beforeAll(async () => {
  [redisProc, broker] = await Promise.all([startRedis(), startBrokerProcess()]);
  const opts = { redisUrl: redisProc.url, kafkaBrokers: broker.bootstrap, args: ['--admin-token', ADMIN, '--rate-limit', '0'] };
  const first = await startGatewayProcess(opts); // creates the orders topic
  gateways = [first, await startGatewayProcess(opts)];
  clients = gateways.map((g) => new HttpClient(g.url, 64));
  redis = new Redis(redisProc.url);
});

afterAll(async () => {
  for (const c of clients) c.close();
  redis?.disconnect();
  await Promise.all(gateways.map((g) => g.kill('SIGKILL')));
  await broker?.kill('SIGKILL');
  await redisProc?.stop();
});

async function loadSku(sku: string, stock: number, perUserLimit: number): Promise<void> {
  const res = await clients[0].request('PUT', `/v1/admin/skus/${sku}`, {
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ stock, perUserLimit }),
  });
  expect(res.status, res.text).toBe(200);
}

async function readSku(sku: string): Promise<{ stock: number; remaining: number; sold: number }> {
  const res = await clients[1].request('GET', `/v1/admin/skus/${sku}`, { headers: { authorization: `Bearer ${ADMIN}` } });
  expect(res.status, res.text).toBe(200);
  return parseJson(res.text);
}

interface Accepted {
  orderId: string;
  partition: number;
  offset: number;
}

/** Status (and error code) -> count. */
function tally(answers: HttpAnswer[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of answers) {
    const k = a.status === 202 ? '202' : `${a.status} ${parseJson<ErrorBody>(a.text).error.code}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

async function ordersOf(sku: string) {
  return (await readOrders(broker.port, 'orders', [partitionForKey(sku, PARTITIONS)])).filter((r) => r.order.sku === sku);
}

describe('no overselling across two gateways', () => {
  it('sells exactly 1,000 of 1,000 to 20,000 concurrent buyers: 1,000 202s, 1,000 records, stock 0, never negative', async () => {
    const sku = 'FLASH-1';
    await loadSku(sku, 1000, 1);
    let minSeen = Number.POSITIVE_INFINITY;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const r = Number(await redis.hget(keys.sku(sku), 'remaining'));
        minSeen = Math.min(minSeen, r);
        await new Promise((res) => setTimeout(res, 5));
      }
    })();

    const started = Date.now();
    const answers = await mapLimit(range(20_000), 128, (i) =>
      clients[i % 2].postJson('/v1/orders', { sku, userId: `user-${i}`, quantity: 1, priceCents: 4999 }),
    );
    const elapsed = Date.now() - started;
    watching = false;
    await watcher;

    expect(tally(answers)).toEqual({ '202': 1000, '409 SOLD_OUT': 19_000 });
    expect(minSeen).toBeGreaterThanOrEqual(0);
    expect(await readSku(sku)).toMatchObject({ stock: 1000, remaining: 0, sold: 1000 });

    const accepted = answers.filter((a) => a.status === 202).map((a) => parseJson<Accepted>(a.text));
    const acceptedByGateway = [0, 1].map((g) => answers.filter((a, i) => i % 2 === g && a.status === 202).length);
    expect(acceptedByGateway[0] + acceptedByGateway[1]).toBe(1000);

    const logged = await ordersOf(sku);
    expect(logged).toHaveLength(1000);
    const byPlace = new Map(logged.map((r) => [`${r.partition}:${r.offset}`, r.order.orderId]));
    for (const a of accepted) expect(byPlace.get(`${a.partition}:${a.offset}`)).toBe(a.orderId);
    // Each buyer at most once (perUserLimit 1), and every record a distinct order.
    expect(new Set(logged.map((r) => r.order.userId)).size).toBe(1000);
    expect(new Set(logged.map((r) => r.order.orderId)).size).toBe(1000);
    console.info(`oversell: 20,000 requests in ${elapsed} ms (${Math.round(20_000 / (elapsed / 1000))}/s); accepted per gateway ${acceptedByGateway.join(' + ')}`);
  }, 150_000);

  it('never lets one user exceed the per-user limit, however many parallel requests', async () => {
    const sku = `LIMIT-${randomUUID().slice(0, 8)}`;
    await loadSku(sku, 1000, 3);
    const userId = 'greedy-user';
    const answers = await Promise.all(range(200).map((i) => clients[i % 2].postJson('/v1/orders', { sku, userId, quantity: 1, priceCents: 100 })));
    expect(tally(answers)).toEqual({ '202': 3, '409 PURCHASE_LIMIT_REACHED': 197 });
    expect(await redis.get(keys.userBought(sku, userId))).toBe('3');
    expect(await readSku(sku)).toMatchObject({ remaining: 997, sold: 3 });
    expect(await ordersOf(sku)).toHaveLength(3);
  });

  it('appends once for 50 concurrent duplicates with one Idempotency-Key, all answered identically', async () => {
    const sku = `IDEM-${randomUUID().slice(0, 8)}`;
    await loadSku(sku, 10, 0);
    const key = `k-${randomUUID()}`;
    const body = { sku, userId: 'u-idem', quantity: 1, priceCents: 2500 };
    const other = { ...body, priceCents: 1 };
    const answers = await Promise.all([
      ...range(50).map((i) => clients[i % 2].postJson('/v1/orders', body, { 'idempotency-key': key })),
      ...range(10).map((i) => clients[i % 2].postJson('/v1/orders', other, { 'idempotency-key': key })),
    ]);
    const same = answers.slice(0, 50);
    expect(tally(same)).toEqual({ '202': 50 });
    expect(new Set(same.map((a) => a.text)).size).toBe(1);
    expect(tally(answers.slice(50))).toEqual({ '422 IDEMPOTENCY_KEY_REUSED': 10 });

    const accepted = parseJson<Accepted>(same[0].text);
    const logged = await ordersOf(sku);
    expect(logged.map((r) => [r.order.orderId, r.partition, r.offset])).toEqual([[accepted.orderId, accepted.partition, accepted.offset]]);
    expect(await readSku(sku)).toMatchObject({ remaining: 9, sold: 1 });
    // And later, from either gateway, still the same bytes.
    for (const c of clients) expect((await c.postJson('/v1/orders', body, { 'idempotency-key': key })).text).toBe(same[0].text);
  });
});
