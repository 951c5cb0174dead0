/**
 * The order-intake contract (ARCHITECTURE.md, "Order intake") against real processes: a broker,
 * a private redis-server and gateway processes, over real HTTP. Every status and error code of
 * the contract, with the record checked in the log itself. Outages (Redis stopped, broker
 * SIGKILLed) run last because they break the shared stack.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../lib/src/redis-keys.ts';
import { startBrokerProcess, startGatewayProcess, startRedis, waitFor, type BrokerProcess, type GatewayProcess, type RedisProcess } from '../../lib/src/testing/processes.ts';
import { partitionForKey } from '../src/publisher.ts';
import { HttpClient, parseJson, type ErrorBody } from './support/http.ts';
import { range, readOrders } from './support/log.ts';

const ADMIN = 'test-admin-token-0123456789';
const PARTITIONS = 12;

let redisProc: RedisProcess;
let broker: BrokerProcess;
/** Admin token, no rate limit, short append timeout (for the outage test). */
let gw: GatewayProcess;
/** --rate-limit 3 per 60 s. */
let gwLimited: GatewayProcess;
/** --require-api-key true --require-known-sku true, admin API disabled. */
let gwKeys: GatewayProcess;
let redis: Redis;
let raw: HttpClient;

beforeAll(async () => {
  [redisProc, broker] = await Promise.all([startRedis(), startBrokerProcess()]);
  const base = { redisUrl: redisProc.url, kafkaBrokers: broker.bootstrap };
  // The first gateway creates the orders topic; the others find it.
  gw = await startGatewayProcess({ ...base, args: ['--admin-token', ADMIN, '--rate-limit', '0', '--append-timeout-ms', '2000'] });
  [gwLimited, gwKeys] = await Promise.all([
    startGatewayProcess({ ...base, args: ['--rate-limit', '3', '--rate-limit-window-s', '60'] }),
    startGatewayProcess({ ...base, args: ['--require-api-key', 'true', '--require-known-sku', 'true', '--rate-limit', '0'] }),
  ]);
  redis = new Redis(redisProc.url, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined); // the outage test stops Redis under this client
  raw = new HttpClient(gw.url, 8);
});

afterAll(async () => {
  raw?.close();
  redis?.disconnect();
  await Promise.all([gw?.kill('SIGKILL'), gwLimited?.kill('SIGKILL'), gwKeys?.kill('SIGKILL')]);
  await broker?.kill('SIGKILL');
  await redisProc?.stop();
});

// ---- helpers ----

let seq = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++seq}`;

const order = (over: Record<string, unknown> = {}) => ({ sku: unique('SKU'), userId: unique('u'), quantity: 1, priceCents: 1999, ...over });

function postOrder(base: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}/v1/orders`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

function admin(method: string, path: string, body?: unknown, token = ADMIN, base = gw.url): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== '') headers.authorization = `Bearer ${token}`;
  return fetch(`${base}/v1/admin${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function loadSku(sku: string, stock: number, perUserLimit = 0): Promise<void> {
  const res = await admin('PUT', `/skus/${sku}`, { stock, perUserLimit });
  expect(res.status).toBe(200);
}

interface SkuView {
  sku: string;
  stock: number;
  remaining: number;
  sold: number;
  perUserLimit: number;
}
async function readSku(sku: string): Promise<SkuView> {
  const res = await admin('GET', `/skus/${sku}`);
  expect(res.status).toBe(200);
  return (await res.json()) as SkuView;
}

interface Accepted {
  orderId: string;
  status: string;
  partition: number;
  offset: number;
  estimatedDeliverySeconds: number;
}

async function expectAccepted(res: Response): Promise<Accepted> {
  const text = await res.text();
  expect(res.status, text).toBe(202);
  const body = parseJson<Accepted>(text);
  expect(Object.keys(body)).toEqual(['orderId', 'status', 'partition', 'offset', 'estimatedDeliverySeconds']);
  expect(body.orderId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  expect(body.status).toBe('accepted');
  expect(Number.isInteger(body.partition) && body.partition >= 0 && body.partition < PARTITIONS).toBe(true);
  expect(Number.isInteger(body.offset) && body.offset >= 0).toBe(true);
  expect(Number.isInteger(body.estimatedDeliverySeconds)).toBe(true);
  return body;
}

/** The error shape of the contract: exactly {"error":{"code","message",...}}, JSON, no stack. */
function checkErrorText(status: number, contentType: string | null | undefined, text: string, wantStatus: number, code: string): ErrorBody {
  expect(status, text).toBe(wantStatus);
  expect(contentType).toMatch(/^application\/json/);
  const body = parseJson<ErrorBody>(text);
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe('string');
  expect(body.error.message.length).toBeGreaterThan(0);
  expect(text).not.toMatch(/stack|\n\s+at |\.ts:\d+/);
  return body;
}

async function expectError(res: Response, status: number, code: string): Promise<ErrorBody> {
  return checkErrorText(res.status, res.headers.get('content-type'), await res.text(), status, code);
}

async function recordsOf(partition: number) {
  return readOrders(broker.port, 'orders', [partition]);
}

// ---- the contract ----

describe('POST /v1/orders', () => {
  it('answers 202 {orderId, status, partition, offset, estimatedDeliverySeconds} once the order is in the log', async () => {
    const body = order({ currency: 'EUR', metadata: { channel: 'app' } });
    const before = Date.now();
    const accepted = await expectAccepted(await postOrder(gw.url, body));
    expect(accepted.estimatedDeliverySeconds).toBe(0);
    // Key = SKU, partition = murmur2(SKU) as kafkajs's DefaultPartitioner would choose.
    expect(accepted.partition).toBe(partitionForKey(body.sku, PARTITIONS));
    const records = await recordsOf(accepted.partition);
    const rec = records.find((r) => r.offset === accepted.offset);
    expect(rec, 'the record at the answered partition/offset').toBeDefined();
    expect(rec?.key).toBe(body.sku);
    expect(rec?.orderIdHeader).toBe(accepted.orderId);
    expect(rec?.order).toEqual({ ...body, orderId: accepted.orderId, acceptedAt: rec?.order.acceptedAt });
    expect(rec?.order.acceptedAt).toBeGreaterThanOrEqual(before);
    expect(rec?.order.acceptedAt).toBeLessThanOrEqual(Date.now());
  });

  it('answers a repeated Idempotency-Key with the same bytes and no second record; a different body is 422 IDEMPOTENCY_KEY_REUSED', async () => {
    const body = order();
    const key = `idem-${randomUUID()}`;
    const first = await postOrder(gw.url, body, { 'idempotency-key': key });
    const firstText = await first.text();
    expect(first.status, firstText).toBe(202);
    const again = await postOrder(gw.url, body, { 'idempotency-key': key });
    expect(again.status).toBe(202);
    expect(await again.text()).toBe(firstText);
    // Another gateway process answers the same (the answer lives in Redis, not in the process).
    const elsewhere = await postOrder(gwLimited.url, body, { 'idempotency-key': key });
    expect(elsewhere.status).toBe(202);
    expect(await elsewhere.text()).toBe(firstText);

    const reused = await expectError(await postOrder(gw.url, { ...body, quantity: 2 }, { 'idempotency-key': key }), 422, 'IDEMPOTENCY_KEY_REUSED');
    expect(reused.error.message).toMatch(/different body/);

    const accepted = parseJson<Accepted>(firstText);
    const records = await recordsOf(accepted.partition);
    expect(records.filter((r) => r.order.sku === body.sku).map((r) => r.order.orderId)).toEqual([accepted.orderId]);
    // Without a key, the same body is a second order.
    const second = await expectAccepted(await postOrder(gw.url, body));
    expect(second.orderId).not.toBe(accepted.orderId);
  });

  it('answers 400 VALIDATION_FAILED naming every bad field', async () => {
    const bad = await expectError(
      await postOrder(gw.url, { sku: 'not a sku!', userId: '', quantity: 0, priceCents: -5, currency: 'euro', metadata: { k: 7 }, coupon: 'FREE' }),
      400,
      'VALIDATION_FAILED',
    );
    const fields = (bad.error.fields as { field: string; message: string }[]).map((f) => f.field);
    for (const f of ['sku', 'userId', 'quantity', 'priceCents', 'currency', 'metadata.k', 'coupon']) {
      expect(fields, f).toContain(f);
      expect(bad.error.message).toContain(f);
    }

    const missing = await expectError(await postOrder(gw.url, {}), 400, 'VALIDATION_FAILED');
    expect((missing.error.fields as { field: string }[]).map((f) => f.field).sort()).toEqual(['priceCents', 'quantity', 'sku', 'userId']);

    const wrongTypes = await expectError(await postOrder(gw.url, { sku: 'S-1', userId: 42, quantity: 1.5, priceCents: '100' }), 400, 'VALIDATION_FAILED');
    expect((wrongTypes.error.fields as { field: string }[]).map((f) => f.field).sort()).toEqual(['priceCents', 'quantity', 'userId']);

    await expectError(await postOrder(gw.url, [order()]), 400, 'VALIDATION_FAILED');
    await expectError(await postOrder(gw.url, null), 400, 'VALIDATION_FAILED');

    const badKey = await expectError(await postOrder(gw.url, order(), { 'idempotency-key': 'x'.repeat(256) }), 400, 'VALIDATION_FAILED');
    expect(bad.error.message).toMatch(/invalid fields/);
    expect(badKey.error.message).toContain('Idempotency-Key');
  });

  it('answers 413 PAYLOAD_TOO_LARGE for a body over the limit, declared or chunked', async () => {
    const big = JSON.stringify(order({ metadata: Object.fromEntries(range(40).map((i) => [`k${i}`, 'x'.repeat(500)])) }));
    expect(big.length).toBeGreaterThan(16 * 1024);
    const declared = await raw.request('POST', '/v1/orders', { headers: { 'content-type': 'application/json' }, body: big });
    const e1 = checkErrorText(declared.status, declared.headers['content-type'], declared.text, 413, 'PAYLOAD_TOO_LARGE');
    expect(e1.error.limit).toBe(16 * 1024);
    const chunked = await raw.request('POST', '/v1/orders', {
      headers: { 'content-type': 'application/json' },
      chunks: range(9).map(() => Buffer.from(' '.repeat(4096))),
    });
    checkErrorText(chunked.status, chunked.headers['content-type'], chunked.text, 413, 'PAYLOAD_TOO_LARGE');
    // The connection is still usable afterwards.
    await expectAccepted(await postOrder(gw.url, order()));
  });

  it('answers 415 UNSUPPORTED_MEDIA_TYPE without a JSON content type', async () => {
    const text = await fetch(`${gw.url}/v1/orders`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify(order()) });
    await expectError(text, 415, 'UNSUPPORTED_MEDIA_TYPE');
    const form = await fetch(`${gw.url}/v1/orders`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'sku=S&userId=u' });
    await expectError(form, 415, 'UNSUPPORTED_MEDIA_TYPE');
    const none = await raw.request('POST', '/v1/orders', { body: JSON.stringify(order()) });
    checkErrorText(none.status, none.headers['content-type'], none.text, 415, 'UNSUPPORTED_MEDIA_TYPE');
    // A JSON type with parameters or a +json suffix is fine.
    const withCharset = await fetch(`${gw.url}/v1/orders`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: JSON.stringify(order()) });
    await expectAccepted(withCharset);
  });

  it('answers 400 MALFORMED_JSON for a body that is not JSON', async () => {
    for (const body of ['{"sku":', 'not json', '', '{"sku":"A",}']) {
      const res = await fetch(`${gw.url}/v1/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      await expectError(res, 400, 'MALFORMED_JSON');
    }
  });

  it('answers 409 SOLD_OUT once the stock is gone, and stock never goes below zero', async () => {
    const sku = unique('STOCK');
    await loadSku(sku, 3);
    await expectAccepted(await postOrder(gw.url, order({ sku, quantity: 2 })));
    // More than what remains is sold out too, and takes nothing.
    const tooMany = await expectError(await postOrder(gw.url, order({ sku, quantity: 2 })), 409, 'SOLD_OUT');
    expect(tooMany.error).toMatchObject({ sku, remaining: 1 });
    await expectAccepted(await postOrder(gw.url, order({ sku })));
    const gone = await expectError(await postOrder(gw.url, order({ sku })), 409, 'SOLD_OUT');
    expect(gone.error).toMatchObject({ sku, remaining: 0 });
    expect(await readSku(sku)).toMatchObject({ sku, stock: 3, remaining: 0, sold: 3 });
  });

  it('answers 409 PURCHASE_LIMIT_REACHED once a user bought the per-user limit', async () => {
    const sku = unique('LIMIT');
    await loadSku(sku, 100, 2);
    const userId = unique('buyer');
    await expectAccepted(await postOrder(gw.url, order({ sku, userId })));
    await expectAccepted(await postOrder(gw.url, order({ sku, userId })));
    const third = await expectError(await postOrder(gw.url, order({ sku, userId })), 409, 'PURCHASE_LIMIT_REACHED');
    expect(third.error).toMatchObject({ sku });
    // A quantity over the limit at once is refused for a fresh user too; others still buy.
    await expectError(await postOrder(gw.url, order({ sku, quantity: 3 })), 409, 'PURCHASE_LIMIT_REACHED');
    await expectAccepted(await postOrder(gw.url, order({ sku, quantity: 2 })));
    expect(await readSku(sku)).toMatchObject({ remaining: 96, sold: 4, perUserLimit: 2 });
    expect(await redis.get(keys.userBought(sku, userId))).toBe('2');
  });

  it('answers 429 RATE_LIMITED with Retry-After and RateLimit-* headers over the client rate', async () => {
    // Other tests may already have spent some of this 60 s window: count down to zero.
    let remaining = 3;
    while (remaining > 0) {
      const res = await postOrder(gwLimited.url, order());
      await expectAccepted(res);
      expect(res.headers.get('ratelimit-limit')).toBe('3');
      const now = Number(res.headers.get('ratelimit-remaining'));
      expect(now).toBeLessThan(remaining);
      expect(now).toBeGreaterThanOrEqual(0);
      expect(Number(res.headers.get('ratelimit-reset'))).toBeGreaterThan(0);
      remaining = now;
    }
    const limited = await postOrder(gwLimited.url, order());
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60).toBe(true);
    expect(limited.headers.get('ratelimit-limit')).toBe('3');
    expect(limited.headers.get('ratelimit-remaining')).toBe('0');
    expect(Number(limited.headers.get('ratelimit-reset'))).toBe(retryAfter);
    const body = await expectError(limited, 429, 'RATE_LIMITED');
    expect(body.error.retryAfterSeconds).toBe(retryAfter);
    // The limit is per client and per gateway setting: the unlimited gateway still accepts.
    await expectAccepted(await postOrder(gw.url, order()));
  });

  it('answers 503 BACKLOG_FULL with Retry-After while the drain ETA is over budget, and resumes only below the resume mark', async () => {
    const downstream = unique('fulfilment');
    const publish = async (etaSeconds: number, backlog: number) => {
      await redis.sadd(keys.backlogIndex(), downstream);
      await redis.hset(keys.backlog(downstream), 'etaSeconds', String(etaSeconds), 'backlog', String(backlog), 'ratePerSecond', '10', 'updatedAt', String(Date.now()));
    };
    try {
      // Budget 3 days (259200 s), resume below 2.5 days (216000 s): the defaults.
      await publish(400_000, 4_000_000);
      const shed = await waitFor(
        async () => {
          const res = await postOrder(gw.url, order());
          return res.status === 503 ? res : (await res.body?.cancel(), null);
        },
        { what: 'admission to shed', timeoutMs: 5000 },
      );
      const retryAfter = Number(shed.headers.get('retry-after'));
      expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 300).toBe(true);
      const body = await expectError(shed, 503, 'BACKLOG_FULL');
      expect(body.error.etaSeconds).toBe(400_000);

      // Between the marks: still shedding (hysteresis), after several polls.
      await publish(250_000, 2_500_000);
      const view = await waitFor(
        async () => {
          const v = (await (await admin('GET', '/backlog')).json()) as { shedding: boolean; etaSeconds: number };
          return v.etaSeconds === 250_000 ? v : null;
        },
        { what: 'the new ETA' },
      );
      expect(view.shedding).toBe(true);
      await new Promise((r) => setTimeout(r, 1200));
      await expectError(await postOrder(gw.url, order()), 503, 'BACKLOG_FULL');

      // Below the resume mark: accepting again, with the ETA as the delivery estimate.
      await publish(1_000, 10_000);
      const res = await waitFor(
        async () => {
          const r = await postOrder(gw.url, order());
          return r.status === 202 ? r : (await r.body?.cancel(), null);
        },
        { what: 'admission to resume', timeoutMs: 5000 },
      );
      expect((await expectAccepted(res)).estimatedDeliverySeconds).toBe(1_000);
    } finally {
      await redis.srem(keys.backlogIndex(), downstream);
      await redis.del(keys.backlog(downstream));
    }
    await waitFor(async () => ((await (await admin('GET', '/backlog')).json()) as { etaSeconds: number }).etaSeconds === 0, { what: 'backlog cleared' });
  });

  it('404 UNKNOWN_SKU for a SKU never loaded when known SKUs are required', async () => {
    const created = await admin('POST', '/api-keys', { name: unique('shop') });
    const { apiKey } = (await created.json()) as { apiKey: string };
    const sku = unique('KNOWN');
    await loadSku(sku, 5);
    const res = await waitFor(
      async () => {
        const r = await postOrder(gwKeys.url, order({ sku }), { 'x-api-key': apiKey });
        return r.status === 202 ? r : (await r.body?.cancel(), null);
      },
      { what: 'the new API key to be usable', timeoutMs: 8000 },
    );
    await expectAccepted(res);
    const unknown = await expectError(await postOrder(gwKeys.url, order(), { 'x-api-key': apiKey }), 404, 'UNKNOWN_SKU');
    expect(unknown.error.sku).toMatch(/^SKU-/);
  });
});

describe('errors', () => {
  it('are always {"error":{"code","message"}} without a stack, also from express itself', async () => {
    await expectError(await fetch(`${gw.url}/v1/nope`), 404, 'NOT_FOUND');
    await expectError(await fetch(`${gw.url}/v1/orders`), 404, 'NOT_FOUND');
    await expectError(await fetch(`${gw.url}/v1/orders/${randomUUID()}`, { method: 'DELETE' }), 404, 'NOT_FOUND');
    // A malformed percent-encoding makes express's router throw before any route runs.
    const malformed = await raw.request('GET', '/v1/orders/%E0%A4%A');
    checkErrorText(malformed.status, malformed.headers['content-type'], malformed.text, 400, 'BAD_REQUEST');
  });
});

describe('GET /v1/orders/:orderId', () => {
  it('answers an accepted order with its place and timestamps; 404 for an unknown one', async () => {
    const body = order();
    const accepted = await expectAccepted(await postOrder(gw.url, body));
    const res = await fetch(`${gw.url}/v1/orders/${accepted.orderId}`);
    expect(res.status).toBe(200);
    const status = (await res.json()) as Record<string, unknown>;
    expect(status).toMatchObject({ orderId: accepted.orderId, status: 'accepted', sku: body.sku, partition: accepted.partition, offset: accepted.offset });
    expect(typeof status.acceptedAt).toBe('number');
    // Any gateway answers it.
    expect(((await (await fetch(`${gwLimited.url}/v1/orders/${accepted.orderId}`)).json()) as { status: string }).status).toBe('accepted');

    await expectError(await fetch(`${gw.url}/v1/orders/${randomUUID()}`), 404, 'ORDER_NOT_FOUND');
    await expectError(await fetch(`${gw.url}/v1/orders/not-an-id`), 400, 'VALIDATION_FAILED');
  });
});

describe('POST /v1/topics/:topic/records', () => {
  it('appends a batch of JSON records and answers per record', async () => {
    const topic = unique('events');
    const kafka = new Kafka({ brokers: [broker.bootstrap], logLevel: logLevel.NOTHING });
    const kadmin = kafka.admin();
    await kadmin.connect();
    await kadmin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
    await kadmin.disconnect();

    const records = [{ key: 'user-1', value: { page: '/home' } }, { value: 'plain string' }, { key: null, value: [1, 2, 3], headers: { source: 'test' } }];
    const res = await fetch(`${gw.url}/v1/topics/${topic}/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records }) });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { topic: string; accepted: number; failed: number; results: { index: number; status: string; partition: number; offset: number }[] };
    expect(body).toMatchObject({ topic, accepted: 3, failed: 0 });
    expect(body.results.map((r) => [r.index, r.status])).toEqual([
      [0, 'accepted'],
      [1, 'accepted'],
      [2, 'accepted'],
    ]);
    expect(body.results[0].partition).toBe(partitionForKey('user-1', 3));
    for (const [i, r] of body.results.entries()) {
      const stored = (await readOrders(broker.port, topic, [r.partition])).find((s) => s.offset === r.offset);
      expect(stored, `record ${i}`).toBeDefined();
      expect(stored?.order as unknown).toEqual(records[i].value);
      expect(stored?.key).toBe(records[i].key ?? null);
    }

    const invalid = await fetch(`${gw.url}/v1/topics/${topic}/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records: [] }) });
    expect((await expectError(invalid, 400, 'VALIDATION_FAILED')).error.message).toContain('records');
    await expectError(await fetch(`${gw.url}/v1/topics/bad%20topic/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records }) }), 400, 'VALIDATION_FAILED');
  });

  it('answers 404 UNKNOWN_TOPIC for a topic that does not exist (not a retryable 503)', async () => {
    const res = await fetch(`${gw.url}/v1/topics/${unique('missing')}/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records: [{ value: 1 }] }) });
    await expectError(res, 404, 'UNKNOWN_TOPIC');
  });
});

describe('admin API', () => {
  it('refuses requests without the bearer token or with a wrong one (401), and is off without a token', async () => {
    await expectError(await admin('GET', '/skus', undefined, ''), 401, 'UNAUTHORIZED');
    await expectError(await admin('GET', '/skus', undefined, 'wrong'), 401, 'UNAUTHORIZED');
    await expectError(await admin('GET', '/skus', undefined, ADMIN.replace(/.$/, 'X')), 401, 'UNAUTHORIZED');
    await expectError(await admin('PUT', '/skus/X-1', { stock: 1 }, 'wrong'), 401, 'UNAUTHORIZED');
    const off = await expectError(await admin('GET', '/skus', undefined, ADMIN, gwKeys.url), 401, 'UNAUTHORIZED');
    expect(off.error.message).toMatch(/disabled/);
  });

  it('loads SKUs in bulk and reads one back with what remains and what was sold', async () => {
    const a = unique('BULK');
    const b = unique('BULK');
    const res = await admin('PUT', '/skus', { skus: [{ sku: a, stock: 10, perUserLimit: 1 }, { sku: b, stock: 5 }] });
    expect(res.status).toBe(200);
    const loaded = (await res.json()) as { loaded: number; skus: SkuView[] };
    expect(loaded.loaded).toBe(2);
    expect(loaded.skus.map((s) => [s.sku, s.stock, s.remaining, s.perUserLimit, s.sold])).toEqual([
      [a, 10, 10, 1, 0],
      [b, 5, 5, 0, 0],
    ]);
    await expectAccepted(await postOrder(gw.url, order({ sku: a })));
    expect(await readSku(a)).toMatchObject({ sku: a, stock: 10, remaining: 9, perUserLimit: 1, sold: 1 });
    const list = (await (await admin('GET', '/skus')).json()) as { skus: SkuView[] };
    expect(list.skus.map((s) => s.sku)).toEqual(expect.arrayContaining([a, b]));

    await expectError(await admin('GET', `/skus/${unique('NEVER')}`), 404, 'UNKNOWN_SKU');
    const bad = await expectError(await admin('PUT', '/skus', { skus: [{ sku: 'bad sku', stock: -1 }] }), 400, 'VALIDATION_FAILED');
    expect(bad.error.message).toMatch(/skus\.0\.sku/);
    expect(bad.error.message).toMatch(/skus\.0\.stock/);
    await expectError(await admin('PUT', `/skus/${a}`, { stock: 'many' }), 400, 'VALIDATION_FAILED');
  });

  it('creates API keys a --require-api-key gateway accepts, and revoked keys get 401 within about 5 s', async () => {
    await expectError(await postOrder(gwKeys.url, order()), 401, 'API_KEY_REQUIRED');
    await expectError(await postOrder(gwKeys.url, order(), { 'x-api-key': 'spw_not_a_key' }), 401, 'INVALID_API_KEY');
    const name = unique('partner');
    const created = await admin('POST', '/api-keys', { name });
    expect(created.status).toBe(201);
    const { apiKey, name: echoed } = (await created.json()) as { apiKey: string; name: string };
    expect(echoed).toBe(name);
    expect(apiKey).toMatch(/^spw_[0-9a-f]{32}$/);
    // Only the hash is stored.
    expect(JSON.stringify(await redis.hgetall(keys.apiKeys()))).not.toContain(apiKey);

    const sku = unique('KEYED');
    await loadSku(sku, 10);
    // Usable at once on another gateway process (its key cache reloads on a miss, at most once a second).
    const created0 = Date.now();
    const accepted = await waitFor(
      async () => {
        const r = await postOrder(gwKeys.url, order({ sku }), { 'x-api-key': apiKey });
        return r.status === 202 ? r : (await r.body?.cancel(), null);
      },
      { what: 'the new API key to be usable', timeoutMs: 8000, intervalMs: 100 },
    );
    expect(Date.now() - created0).toBeLessThan(2500);
    await expectAccepted(accepted);

    const revoked = await admin('DELETE', `/api-keys/${name}`);
    expect(revoked.status).toBe(200);
    expect(await revoked.json()).toEqual({ name, revoked: 1 });
    const t0 = Date.now();
    const refused = await waitFor(
      async () => {
        const r = await postOrder(gwKeys.url, order({ sku }), { 'x-api-key': apiKey });
        return r.status === 401 ? r : (await r.body?.cancel(), null);
      },
      { what: 'the revoked key to be refused', timeoutMs: 8000, intervalMs: 200 },
    );
    expect(Date.now() - t0).toBeLessThan(7000);
    await expectError(refused, 401, 'INVALID_API_KEY');
    await expectError(await admin('DELETE', `/api-keys/${name}`), 404, 'UNKNOWN_API_KEY');
  });
});

describe('health, readiness and metrics', () => {
  it('serves /healthz, /readyz and /metrics with the gateway metrics', async () => {
    const health = await fetch(`${gw.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${gw.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', redis: true, broker: true, stopping: false });

    const sku = unique('METRIC');
    await loadSku(sku, 1);
    await expectAccepted(await postOrder(gw.url, order({ sku })));
    await expectError(await postOrder(gw.url, order({ sku })), 409, 'SOLD_OUT');
    const res = await fetch(`${gw.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/^spillway_gateway_requests_total\{route="orders",status="202",code=""\} [1-9]\d*$/m);
    expect(text).toMatch(/^spillway_gateway_requests_total\{route="orders",status="409",code="SOLD_OUT"\} [1-9]\d*$/m);
    expect(text).toMatch(/^spillway_gateway_orders_total\{outcome="accepted"\} [1-9]\d*$/m);
    expect(text).toMatch(/^spillway_gateway_orders_total\{outcome="SOLD_OUT"\} [1-9]\d*$/m);
    expect(text).toMatch(/^spillway_gateway_intake_duration_seconds_bucket\{le="0\.1",outcome="accepted"\} \d+$/m);
    expect(text).toMatch(/^spillway_gateway_produce_batch_records_count [1-9]\d*$/m);
    expect(text).toContain(`spillway_gateway_stock_remaining{sku="${sku}"} 0`);
    expect(text).toMatch(/^spillway_gateway_backlog_shedding 0$/m);
    expect(text).toMatch(/^spillway_gateway_process_cpu_user_seconds_total /m);
  });
});

describe('outages', () => {
  it('/readyz answers 503 while Redis is stopped and recovers when it is back', async () => {
    await redisProc.stop();
    const notReady = await waitFor(
      async () => {
        const r = await fetch(`${gw.url}/readyz`);
        return r.status === 503 ? r : (await r.body?.cancel(), null);
      },
      { what: 'readyz to fail', timeoutMs: 5000 },
    );
    expect(await notReady.json()).toMatchObject({ status: 'not_ready', redis: false });
    // Orders cannot be admitted without the quota store: a clean 503, no hang, no stack.
    const t0 = Date.now();
    const res = await postOrder(gw.url, order());
    expect(Date.now() - t0).toBeLessThan(5000);
    const e = await expectError(res, 503, 'QUOTAS_UNAVAILABLE');
    expect(e.error.message).toMatch(/retry/);
    expect(res.headers.get('retry-after')).toBe('1');
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);

    redisProc = await startRedis({ port: redisProc.port, dir: redisProc.dir });
    await waitFor(async () => (await fetch(`${gw.url}/readyz`)).status === 200, { what: 'readyz to recover', timeoutMs: 10_000 });
    await waitFor(async () => (await postOrder(gw.url, order())).status === 202, { what: 'orders to be accepted again', timeoutMs: 10_000 });
  });

  it('answers 503 BUFFER_UNAVAILABLE with Retry-After when the broker is down, and gives the stock, limit and key back', async () => {
    const sku = unique('OUTAGE');
    await loadSku(sku, 10, 1);
    const userId = unique('unlucky');
    await broker.kill('SIGKILL');

    const key = `idem-${randomUUID()}`;
    const t0 = Date.now();
    const res = await postOrder(gw.url, order({ sku, userId }), { 'idempotency-key': key });
    expect(Date.now() - t0).toBeLessThan(2000 + 3000);
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    await expectError(res, 503, 'BUFFER_UNAVAILABLE');
    // Everything reserve took is given back: stock, the per-user count and the idempotency claim.
    expect(await readSku(sku)).toMatchObject({ stock: 10, remaining: 10, sold: 0 });
    expect(await redis.get(keys.userBought(sku, userId))).toBeNull();
    expect(await redis.get(keys.idempotency('public', key))).toBeNull();
    // Several at once, the same.
    const many = await Promise.all(range(5).map(() => postOrder(gw.url, order({ sku }))));
    for (const r of many) await expectError(r, 503, 'BUFFER_UNAVAILABLE');
    expect(await readSku(sku)).toMatchObject({ remaining: 10, sold: 0 });
    // And the gateway says it is not ready while it cannot reach the buffer.
    const notReady = await waitFor(
      async () => {
        const r = await fetch(`${gw.url}/readyz`);
        return r.status === 503 ? r : (await r.body?.cancel(), null);
      },
      { what: 'readyz to report the broker down', timeoutMs: 5000 },
    );
    expect(await notReady.json()).toMatchObject({ status: 'not_ready', redis: true, broker: false });
  });
});
