/**
 * The verifier and the recorder that feeds it, against a fake gateway + simulator (one local
 * HTTP server, no broker): it passes a consistent run and fails each broken guarantee —
 * oversold stock, a per-user limit exceeded, the downstream above rate + burst, one
 * Idempotency-Key accepted as two orders. (The real stack run is e2e.test.ts.)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpExchange } from '../src/k6/runtime.ts';
import { Recorder, type AcceptedOrder } from '../src/recorder.ts';
import { verify, waitForDrain, type VerifyTarget } from '../src/verify.ts';

const state = {
  keys: [] as string[],
  duplicates: 0,
  maxPerSecond: 10,
  dlq: [] as string[],
  skus: [{ sku: 'A', stock: 3, remaining: 0, sold: 3, perUserLimit: 2 }],
};

let server: http.Server;
let url: string;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (u.pathname === '/stats') {
      const received = state.keys.length + state.duplicates;
      return json(200, { received, distinctKeys: state.keys.length, duplicates: state.duplicates, maxPerSecond: state.maxPerSecond, byStatus: {}, perSecond: [], keys: state.keys });
    }
    if (u.pathname === '/control') return json(200, { rate: 5, burst: 5 });
    if (req.headers.authorization !== 'Bearer tok') return json(401, { error: { code: 'UNAUTHORIZED' } });
    if (u.pathname === '/v1/admin/skus') return json(200, { skus: state.skus });
    const m = /^\/v1\/admin\/downstreams\/fulfilment\/dlq(?:\/(.+))?$/.exec(u.pathname);
    if (m?.[1]) return state.dlq.includes(m[1]) ? json(200, { orderId: m[1] }) : json(404, { error: { code: 'NOT_DEAD_LETTERED' } });
    if (m) return json(200, { downstream: 'fulfilment', total: state.dlq.length, items: state.dlq.map((orderId) => ({ orderId })) });
    json(404, {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const target = (): VerifyTarget => ({ gatewayUrl: url, adminToken: 'tok', downstreamUrl: url, downstreamName: 'fulfilment', kafkaBrokers: null, topic: 'orders', dlqTopic: 'orders.dlq', rate: { rate: 10, burst: 2 } });

function exchange(status: number, body: unknown, req: { sku: string; userId: string }, key: string | null): HttpExchange {
  return {
    method: 'POST',
    url: 'http://gw/v1/orders',
    requestHeaders: key === null ? {} : { 'Idempotency-Key': key },
    requestBody: JSON.stringify({ ...req, quantity: 1, priceCents: 1 }),
    status,
    responseBody: JSON.stringify(body),
    durationMs: 5,
    endedAt: performance.now(),
    error: '',
  };
}

describe('recorder', () => {
  it('records 202s (replays once), rejections by code, unanswered requests and key conflicts', () => {
    const start = performance.now() - 1;
    const r = new Recorder(() => start);
    const ok = (id: string, key: string, user = 'u1') => exchange(202, { orderId: id, partition: 1, offset: Number(id.slice(1)) }, { sku: 'A', userId: user }, key);
    r.observe(ok('o1', 'k1'));
    r.observe(ok('o1', 'k1')); // the double click: same key, same answer
    r.observe(ok('o2', 'k2'));
    r.observe(ok('o3', 'k2')); // the same key, a second order: a duplicate
    r.observe(exchange(409, { error: { code: 'SOLD_OUT' } }, { sku: 'A', userId: 'u2' }, 'k4'));
    r.observe(exchange(503, { error: { code: 'BACKLOG_FULL' } }, { sku: 'A', userId: 'u3' }, 'k5'));
    r.observe({ ...exchange(0, {}, { sku: 'A', userId: 'u4' }, 'k6'), responseBody: '', error: 'request timeout' });
    r.observe({ ...ok('o9', 'k9'), url: 'http://gw/v1/orders/o9', method: 'GET' }); // not an order intake
    expect([...r.accepted.keys()]).toEqual(['o1', 'o2', 'o3']);
    expect(r.accepted.get('o2')).toEqual({ orderId: 'o2', sku: 'A', userId: 'u1', quantity: 1, partition: 1, offset: 2, idempotencyKey: 'k2' });
    expect(r.replays).toBe(1);
    expect(r.keyConflicts).toEqual([{ idempotencyKey: 'k2', orderIds: ['o2', 'o3'] }]);
    expect(Object.fromEntries(r.rejected)).toEqual({ SOLD_OUT: 1, BACKLOG_FULL: 1, NO_ANSWER: 1 });
    const tl = r.timeline();
    expect(tl.points[0].accepted).toBe(4);
    expect(tl.points[0].rejected).toEqual({ SOLD_OUT: 1, BACKLOG_FULL: 1, NO_ANSWER: 1 });
    expect(tl.rejectionCodes).toEqual(['BACKLOG_FULL', 'NO_ANSWER', 'SOLD_OUT']);
  });
});

describe('verifier', () => {
  const order = (orderId: string, userId = 'u1', sku = 'A'): AcceptedOrder => ({ orderId, sku, userId, quantity: 1, partition: 0, offset: 0, idempotencyKey: orderId });
  const accepted = [order('o1'), order('o2', 'u2'), order('o3', 'u3')];

  it('passes a consistent run: delivered + dead-lettered + buffered = accepted', async () => {
    Object.assign(state, { keys: ['o1', 'old-run'], duplicates: 1, maxPerSecond: 12, dlq: ['o2'] });
    const v = await verify(target(), { accepted, keyConflicts: [], noAnswer: 0 }, { drained: false, waitedMs: 0 });
    expect(v.checks.map((c) => [c.name, c.ok])).toEqual([
      ['accepted = delivered + dead-lettered + still buffered', true],
      ['no duplicate orders, no duplicate effects', true],
      ['stock never oversold', true],
      ['per-user limits held', true],
      ['downstream never above its rate', true],
    ]);
    expect(v.ok).toBe(true);
    expect(v.numbers).toMatchObject({ accepted: 3, delivered: 1, deadLettered: 1, buffered: 1, lost: 0, ledgerDuplicates: 1, unattributedDeliveries: 1, maxPerSecond: 12, rateLimit: 12 });
  });

  it('fails on oversold stock, a per-user limit exceeded, a rate above rate + burst, and a key accepted twice', async () => {
    Object.assign(state, {
      keys: ['o1', 'o2', 'o3', 'o4'],
      duplicates: 0,
      maxPerSecond: 13,
      dlq: [],
      skus: [{ sku: 'A', stock: 3, remaining: -1, sold: 4, perUserLimit: 2 }],
    });
    const four = [...accepted, order('o4', 'u1'), order('o5', 'u1')];
    const v = await verify(target(), { accepted: four, keyConflicts: [{ idempotencyKey: 'k', orderIds: ['o4', 'o5'] }], noAnswer: 0 }, { drained: true, waitedMs: 1 });
    expect(v.ok).toBe(false);
    expect(Object.fromEntries(v.checks.map((c) => [c.name, c.ok]))).toEqual({
      'accepted = delivered + dead-lettered + still buffered': true,
      'no duplicate orders, no duplicate effects': false,
      'stock never oversold': false,
      'per-user limits held': false,
      'downstream never above its rate': false,
    });
    state.skus = [{ sku: 'A', stock: 3, remaining: 0, sold: 3, perUserLimit: 2 }];
  });

  it('waits for the drain: done once every accepted order is delivered or dead-lettered', async () => {
    Object.assign(state, { keys: ['o1'], duplicates: 0, maxPerSecond: 1, dlq: ['o2'] });
    const seen: number[] = [];
    const notYet = await waitForDrain(target(), accepted, 0, (n) => seen.push(n));
    expect(notYet.drained).toBe(false);
    setTimeout(() => state.keys.push('o3'), 300);
    const done = await waitForDrain(target(), accepted, 10_000, (n) => seen.push(n));
    expect(done.drained).toBe(true);
    expect(seen[0]).toBe(1);
    expect(seen[seen.length - 1]).toBe(0);
  });
});
