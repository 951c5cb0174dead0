/**
 * Keys and secrets, against real gateway processes on a real redis-server and broker: API keys
 * live in Redis only as SHA-256 hashes, rotate without a restart (a second key under the same
 * name, then the first revoked by its keyId), only the exact admin bearer token opens
 * /v1/admin, no key or token reaches a log line (every stdout/stderr line of both gateways is
 * kept), --print-config redacts them, and /metrics, /healthz and /readyz carry no order data.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/src/logger.ts';
import { keys } from '../../lib/src/redis-keys.ts';
import { run, spillwayBin, startBrokerProcess, startGatewayProcess, startRedis, waitFor, type BrokerProcess, type GatewayProcess, type RedisProcess } from '../../lib/src/testing/processes.ts';

const ADMIN = `admin-${randomUUID()}`;

let redisProc: RedisProcess;
let broker: BrokerProcess;
/** Admin API on, anonymous clients allowed, logging everything. */
let gwAdmin: GatewayProcess;
/** --require-api-key, logging everything. */
let gwKeys: GatewayProcess;
let redis: Redis;
/** Every API key handed out in this file: none may appear in Redis or in a log. */
const issued: string[] = [];

beforeAll(async () => {
  [redisProc, broker] = await Promise.all([startRedis(), startBrokerProcess()]);
  const base = { redisUrl: redisProc.url, kafkaBrokers: broker.bootstrap };
  gwAdmin = await startGatewayProcess({ ...base, args: ['--admin-token', ADMIN, '--rate-limit', '0', '--log-level', 'trace', '--append-timeout-ms', '3000'] });
  gwKeys = await startGatewayProcess({ ...base, args: ['--require-api-key', 'true', '--rate-limit', '0', '--log-level', 'trace'] });
  redis = new Redis(redisProc.url, { maxRetriesPerRequest: 1 });
});

afterAll(async () => {
  redis?.disconnect();
  await Promise.all([gwAdmin?.kill('SIGKILL'), gwKeys?.kill('SIGKILL')]);
  await broker?.kill('SIGKILL');
  await redisProc?.stop();
});

let seq = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++seq}`;
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function admin(method: string, path: string, body?: unknown, authorization = `Bearer ${ADMIN}`): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (authorization !== '') headers.authorization = authorization;
  return fetch(`${gwAdmin.url}/v1/admin${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function createKey(name: string): Promise<{ apiKey: string; keyId: string }> {
  const res = await admin('POST', '/api-keys', { name });
  expect(res.status).toBe(201);
  const created = (await res.json()) as { name: string; apiKey: string; keyId: string };
  expect(created.name).toBe(name);
  expect(created.apiKey).toMatch(/^spw_[0-9a-f]{32}$/);
  expect(created.keyId).toBe(sha256(created.apiKey).slice(0, 12));
  issued.push(created.apiKey);
  return created;
}

const order = (over: Record<string, unknown> = {}) => ({ sku: unique('SKU'), userId: unique('user'), quantity: 1, priceCents: 500, ...over });

function postOrder(base: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}/v1/orders`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

async function statusOf(res: Response): Promise<number> {
  await res.body?.cancel();
  return res.status;
}

/** Every key name and value in Redis, as text. */
async function dumpRedis(): Promise<string> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, names] = await redis.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const k of names) {
      out.push(k);
      const type = await redis.type(k);
      if (type === 'string') out.push((await redis.get(k)) ?? '');
      else if (type === 'hash') out.push(JSON.stringify(await redis.hgetall(k)));
      else if (type === 'set') out.push(JSON.stringify(await redis.smembers(k)));
      else if (type === 'list') out.push(JSON.stringify(await redis.lrange(k, 0, -1)));
      else if (type === 'zset') out.push(JSON.stringify(await redis.zrange(k, '0', '-1')));
    }
  } while (cursor !== '0');
  return out.join('\n');
}

describe('API keys', () => {
  it('are stored only as SHA-256 hashes: neither a key nor the admin token is anywhere in Redis', async () => {
    const name = unique('shop');
    const { apiKey } = await createKey(name);
    expect(await redis.hget(keys.apiKeys(), sha256(apiKey))).toBe(name);
    // Use it: rate-limit, idempotency and order keys get written under the client's name.
    const accepted = await waitFor(async () => {
      const r = await postOrder(gwKeys.url, order(), { 'x-api-key': apiKey, 'idempotency-key': unique('idem') });
      return r.status === 202 ? r : (await r.body?.cancel(), null);
    }, { what: 'the new key to be usable', timeoutMs: 20_000, intervalMs: 200 });
    await accepted.body?.cancel();
    const dump = await dumpRedis();
    expect(dump).toContain(sha256(apiKey));
    expect(dump).toContain(`${keys.idempotency(name, '')}`);
    expect(dump).not.toContain(apiKey);
    expect(dump).not.toContain(apiKey.slice(4));
    expect(dump).not.toContain(ADMIN);
  });

  it('rotate without a restart: a second key under the same name works at once, the first stops after revocation by keyId, answers stay in one idempotency namespace', async () => {
    const started = gwKeys.logs.filter((l) => l.msg === 'gateway listening').length;
    const name = unique('partner');
    const first = await createKey(name);
    const idem = unique('idem');
    const body = order();
    const usable = (apiKey: string) =>
      waitFor(async () => ((await statusOf(await postOrder(gwKeys.url, order(), { 'x-api-key': apiKey }))) === 202 ? true : null), { what: 'the key to be usable', timeoutMs: 20_000, intervalMs: 200 });
    await usable(first.apiKey);
    const answer1 = await postOrder(gwKeys.url, body, { 'x-api-key': first.apiKey, 'idempotency-key': idem });
    expect(answer1.status).toBe(202);
    const text1 = await answer1.text();

    const second = await createKey(name);
    expect(second.keyId).not.toBe(first.keyId);
    await usable(second.apiKey);
    // Same client name: a retry with the new key gets the first answer, not a second order.
    const answer2 = await postOrder(gwKeys.url, body, { 'x-api-key': second.apiKey, 'idempotency-key': idem });
    expect([answer2.status, await answer2.text()]).toEqual([202, text1]);

    const listed = (await (await admin('GET', '/api-keys')).json()) as { apiKeys: { name: string; keyId: string }[] };
    expect(listed.apiKeys.filter((k) => k.name === name).map((k) => k.keyId).sort()).toEqual([first.keyId, second.keyId].sort());
    expect(JSON.stringify(listed)).not.toContain(first.apiKey);

    expect(await statusOf(await admin('DELETE', `/api-keys/${name}?keyId=nope`))).toBe(404);
    // Two keyIds is a mistake, not "revoke them all".
    expect(await statusOf(await admin('DELETE', `/api-keys/${name}?keyId=${first.keyId}&keyId=${second.keyId}`))).toBe(400);
    const revoked = await admin('DELETE', `/api-keys/${name}?keyId=${first.keyId}`);
    expect([revoked.status, await revoked.json()]).toEqual([200, { name, revoked: 1 }]);
    await waitFor(async () => ((await statusOf(await postOrder(gwKeys.url, order(), { 'x-api-key': first.apiKey }))) === 401 ? true : null), {
      what: 'the revoked key to be refused',
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    expect(await statusOf(await postOrder(gwKeys.url, order(), { 'x-api-key': second.apiKey }))).toBe(202);

    // Revoking the name revokes the rest.
    expect(await statusOf(await admin('DELETE', `/api-keys/${name}`))).toBe(200);
    await waitFor(async () => ((await statusOf(await postOrder(gwKeys.url, order(), { 'x-api-key': second.apiKey }))) === 401 ? true : null), {
      what: 'the second key to be refused',
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    expect(await statusOf(await admin('DELETE', `/api-keys/${name}`))).toBe(404);
    // No restart happened.
    expect(gwKeys.proc.exitCode).toBeNull();
    expect(gwKeys.logs.filter((l) => l.msg === 'gateway listening').length).toBe(started);
  });
});

describe('admin token', () => {
  it('only the exact bearer token opens /v1/admin: shorter, longer, prefixed, differently cased or repeated ones do not', async () => {
    const wrong = [
      '',
      'Bearer',
      'Bearer ',
      ADMIN,
      `bearer ${ADMIN}`,
      `Bearer  ${ADMIN}`,
      `Bearer ${ADMIN.slice(0, -1)}`,
      `Bearer ${ADMIN}x`,
      `Bearer ${ADMIN.toUpperCase()}`,
      `Bearer ${ADMIN.slice(0, -1)}${ADMIN.endsWith('0') ? '1' : '0'}`,
      `Basic ${Buffer.from(`admin:${ADMIN}`).toString('base64')}`,
      `Bearer ${'x'.repeat(4000)}`,
    ];
    for (const authorization of wrong) {
      const res = await admin('GET', '/skus', undefined, authorization);
      expect(res.status, authorization.slice(0, 60)).toBe(401);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('UNAUTHORIZED');
      expect(JSON.stringify(body)).not.toContain(ADMIN);
    }
    expect(await statusOf(await admin('GET', '/skus'))).toBe(200);
  });
});

describe('secrets in logs and printed settings', () => {
  it('the logger redacts credentials wherever they sit in a logged object', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const log = createLogger('test', 'info', sink);
    log.info({ req: { headers: { authorization: 'Bearer S1', 'x-api-key': 'S2', cookie: 'S3', host: 'h' } }, config: { adminToken: 'S4', port: 1 }, apiKey: 'S5', password: 'S6' }, 'request');
    const text = lines.join('');
    for (const s of ['S1', 'S2', 'S3', 'S4', 'S5', 'S6']) expect(text).not.toContain(`"${s}`);
    expect(text).toContain('<redacted>');
    const parsed = JSON.parse(text) as { req: { headers: Record<string, string> }; config: Record<string, unknown> };
    expect(parsed.req.headers.host).toBe('h');
    expect(parsed.config.port).toBe(1);
  });

  it('--print-config redacts the admin token and the password of REDIS_URL', async () => {
    const token = `tok-${randomUUID()}`;
    const out = await run(process.execPath, [spillwayBin, 'gateway', '--print-config', '--admin-token', token, '--redis-url', 'redis://default:hunter2-secret@10.1.2.3:6379/0']);
    expect(out.code).toBe(0);
    const text = out.stdout.toString();
    expect(text).not.toContain(token);
    expect(text).not.toContain('hunter2-secret');
    const printed = JSON.parse(text) as Record<string, unknown>;
    expect(printed.adminToken).toBe('<redacted>');
    expect(printed.redisUrl).toBe('redis://default:<redacted>@10.1.2.3:6379/0');
    const help = await run(process.execPath, [spillwayBin, 'gateway', '--help', '--admin-token', token]);
    expect(help.stdout.toString()).not.toContain(token);
  });

  it('no API key or admin token appears in any log line of either gateway (at trace level), whatever was sent', async () => {
    const { apiKey } = await createKey(unique('logged'));
    // Wrong tokens, real and fake keys on every kind of route, a failing body, an unknown path.
    await statusOf(await admin('GET', '/skus', undefined, `Bearer ${ADMIN}x`));
    await statusOf(await admin('PUT', '/skus/LOG-1', { stock: 'x' }));
    for (const base of [gwAdmin.url, gwKeys.url]) {
      await statusOf(await postOrder(base, order(), { 'x-api-key': apiKey, authorization: `Bearer ${ADMIN}` }));
      await statusOf(await postOrder(base, { nope: true }, { 'x-api-key': apiKey }));
      await statusOf(await postOrder(base, order(), { 'x-api-key': `${apiKey}0` }));
      await statusOf(await fetch(`${base}/v1/nowhere/${apiKey}`, { headers: { 'x-api-key': apiKey, authorization: `Bearer ${ADMIN}` } }));
    }
    expect(issued.length).toBeGreaterThanOrEqual(4);
    for (const gw of [gwAdmin, gwKeys]) {
      const text = `${gw.logs.map((l) => JSON.stringify(l)).join('\n')}\n${gw.stderr.join('')}`;
      expect(gw.logs.length).toBeGreaterThan(0);
      expect(text).not.toContain(ADMIN);
      for (const key of issued) {
        expect(text).not.toContain(key);
        expect(text).not.toContain(key.slice(4));
      }
    }
  });
});

describe('metrics and health', () => {
  it('carry no order ids, user ids, Idempotency-Keys or ordered SKUs; only SKUs loaded by an operator label the stock gauge', async () => {
    const loaded = unique('LOADED');
    expect(await statusOf(await admin('PUT', `/skus/${loaded}`, { stock: 1 }))).toBe(200);
    const secrets: string[] = [];
    for (let i = 0; i < 5; i++) {
      const body = order();
      const idem = unique('IDEM');
      const res = await postOrder(gwAdmin.url, body, { 'idempotency-key': idem });
      expect(res.status).toBe(202);
      const { orderId } = (await res.json()) as { orderId: string };
      secrets.push(body.sku, body.userId, idem, orderId);
    }
    const soldOutUser = unique('user');
    await statusOf(await postOrder(gwAdmin.url, order({ sku: loaded })));
    await statusOf(await postOrder(gwAdmin.url, order({ sku: loaded, userId: soldOutUser })));
    const badSku = unique('BAD SKU');
    await statusOf(await postOrder(gwAdmin.url, order({ sku: badSku })));
    secrets.push(soldOutUser, badSku);

    const list = (await (await admin('GET', '/skus')).json()) as { skus: { sku: string }[] };
    const loadedSkus = new Set(list.skus.map((s) => s.sku));
    for (const path of ['/metrics', '/healthz', '/readyz']) {
      const res = await fetch(`${gwAdmin.url}${path}`);
      expect(res.status, path).toBe(200);
      const text = await res.text();
      for (const s of secrets) expect(text, `${path} reveals ${s}`).not.toContain(s);
      expect(text).not.toContain(ADMIN);
      for (const [, sku] of text.matchAll(/sku="([^"]*)"/g)) expect(loadedSkus.has(sku), `${path}: sku label ${sku}`).toBe(true);
      expect(text).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/);
    }
  });
});

describe('outage answers (last: the broker is killed)', () => {
  it('name no host, port or client error: per-record errors, order errors and /readyz', async () => {
    const before = await fetch(`${gwAdmin.url}/v1/topics/orders/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records: [{ value: 1 }] }) });
    expect(before.status).toBe(202);
    await before.body?.cancel();
    await broker.kill('SIGKILL');
    const internals = [/127\.0\.0\.1/, new RegExp(`:${broker.port}\\b`), /ECONN|EPIPE|ETIMEDOUT/i, /kafkajs|KafkaJS|Connection error|timed out after/i, /\bat [\w.<>]+ \(/];
    const texts: string[] = [];
    for (let i = 0; i < 2; i++) {
      const records = await fetch(`${gwAdmin.url}/v1/topics/orders/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ records: [{ value: i }, { key: 'k', value: i }] }) });
      expect(records.status).toBeGreaterThanOrEqual(500);
      const text = await records.text();
      const body = JSON.parse(text) as { results?: { status: string; error: { code: string; message: string } }[]; error?: { code: string } };
      for (const r of body.results ?? []) expect([r.status, r.error.code]).toEqual(['failed', 'BUFFER_UNAVAILABLE']);
      texts.push(text);
      const placed = await postOrder(gwAdmin.url, order());
      expect(placed.status).toBe(503);
      texts.push(await placed.text());
    }
    const ready = await fetch(`${gwAdmin.url}/readyz`);
    texts.push(await ready.text());
    for (const text of texts) for (const re of internals) expect(text, `${String(re)} in ${text}`).not.toMatch(re);
  });
});
