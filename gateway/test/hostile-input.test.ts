/**
 * Hostile input, property-based (fast-check), against a real gateway (started in this process
 * with startGateway, so Object.prototype can be watched) on a real redis-server and a real broker
 * process, over raw TCP (so any byte can be sent): arbitrary JSON values and bytes as bodies of
 * every endpoint that reads one, deep nesting, huge numbers, lone surrogates and NUL, prototype
 * keys, duplicate keys, wrong content types and charsets, odd headers, random methods and paths.
 *
 * The property: the answer is 2xx (rarely valid input) or 4xx, never 5xx; every error is exactly
 * `{"error":{"code","message",...}}` with no stack, file path or internal message; the gateway
 * stays up; Object.prototype is untouched; a sentinel SKU's stock is untouched.
 */
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../lib/src/redis-keys.ts';
import { repoRoot, startBrokerProcess, startRedis, type BrokerProcess, type RedisProcess } from '../../lib/src/testing/processes.ts';
import { loadGatewayConfig } from '../src/config.ts';
import { startGateway } from '../src/main.ts';
import { readOrders } from './support/log.ts';
import { parseAnswers, RawSocket } from './support/raw-socket.ts';

const ADMIN = 'hostile-admin-token-0123456789';
const TOPIC = `hostile-${process.pid}`;
const SENTINEL = `SENTINEL-${process.pid}`;
const SENTINEL_STOCK = 7;

let redisProc: RedisProcess;
let broker: BrokerProcess;
let gateway: { port: number; stop: () => Promise<void> };
let redis: Redis;
const protoBefore = Object.getOwnPropertyNames(Object.prototype).sort();

beforeAll(async () => {
  [redisProc, broker] = await Promise.all([startRedis(), startBrokerProcess()]);
  const kafka = new Kafka({ brokers: [broker.bootstrap], logLevel: logLevel.NOTHING });
  const kadmin = kafka.admin();
  await kadmin.connect();
  await kadmin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 2 }] });
  await kadmin.disconnect();
  const { config } = loadGatewayConfig(
    ['--port', '0', '--redis-url', redisProc.url, '--kafka-brokers', broker.bootstrap, '--admin-token', ADMIN, '--rate-limit', '0', '--orders-partitions', '2', '--log-level', 'fatal'],
    {},
  );
  gateway = await startGateway(config);
  redis = new Redis(redisProc.url, { maxRetriesPerRequest: 1 });
  const loaded = await send({ method: 'PUT', path: `/v1/admin/skus/${SENTINEL}`, headers: [...adminAuth, ['Content-Type', 'application/json']], body: JSON.stringify({ stock: SENTINEL_STOCK, perUserLimit: 1 }) });
  expect(loaded.status).toBe(200);
}, 60_000);

afterAll(async () => {
  redis?.disconnect();
  await gateway?.stop();
  await broker?.kill('SIGKILL');
  await redisProc?.stop();
});

// ---- raw requests ----

interface Req {
  method: string;
  path: string;
  headers: [string, string][];
  body?: string | Buffer;
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const adminAuth: [string, string][] = [['Authorization', `Bearer ${ADMIN}`]];

/** One request on its own connection (Connection: close), answered once the server closes it. */
async function send(req: Req): Promise<Answer> {
  const s = await RawSocket.connect(gateway.port);
  const body = req.body === undefined ? Buffer.alloc(0) : Buffer.from(req.body);
  const hasLength = req.headers.some(([n]) => /^(content-length|transfer-encoding)$/i.test(n));
  const lines = [`${req.method} ${req.path} HTTP/1.1`, 'Host: gateway', 'Connection: close', ...req.headers.map(([n, v]) => `${n}: ${v}`)];
  if (!hasLength && (req.body !== undefined || req.method === 'POST' || req.method === 'PUT')) lines.push(`Content-Length: ${body.length}`);
  s.write(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body]));
  await s.waitClosed(60_000);
  const text = s.text();
  // Interim answers (100 Continue to an Expect header) precede the real one.
  const answer = parseAnswers(text).find((a) => a.status >= 200);
  if (answer === undefined) {
    // HEAD answers carry a Content-Length but no body.
    const head = /^HTTP\/1\.1 (\d{3})/.exec(text);
    if (head && req.method === 'HEAD') return { status: Number(head[1]), headers: {}, body: '' };
    throw new Error(`no complete answer to ${req.method} ${req.path.slice(0, 200)}: ${JSON.stringify(text.slice(0, 300))}`);
  }
  return answer;
}

const INTERNALS = [/node_modules/, /\.[cm]?[jt]s:\d+/, /\n\s+at /, /\bat [\w.<>$]+ \(/, /SyntaxError|TypeError|RangeError|ReferenceError/, /Unexpected token|Maximum call stack/, /ioredis|kafkajs|ECONNREFUSED|ERR /];

/** The property every answer must have; throws with the request in the message if not. */
function check(req: Req, a: Answer): void {
  const what = `${req.method} ${req.path.slice(0, 120)} ${JSON.stringify(req.headers).slice(0, 200)} body=${JSON.stringify(String(req.body ?? '').slice(0, 200))} -> ${a.status} ${a.body.slice(0, 300)}`;
  if (!(a.status >= 200 && a.status < 500)) throw new Error(`status ${a.status}: ${what}`);
  if (a.body.includes(repoRoot) && !req.path.includes(repoRoot)) throw new Error(`a file path in the answer: ${what}`);
  for (const re of INTERNALS) {
    if (re.test(a.body) && !re.test(req.path) && !re.test(String(req.body ?? ''))) throw new Error(`internals (${String(re)}) in the answer: ${what}`);
  }
  if (a.status >= 400 && req.method !== 'HEAD') {
    if (!/^application\/json/.test(a.headers['content-type'] ?? '')) throw new Error(`error without a JSON content type: ${what}`);
    const parsed = JSON.parse(a.body) as { error?: { code?: unknown; message?: unknown } };
    if (Object.keys(parsed).join() !== 'error') throw new Error(`error body not {error}: ${what}`);
    if (typeof parsed.error?.code !== 'string' || !/^[A-Z][A-Z_]*$/.test(parsed.error.code)) throw new Error(`error.code: ${what}`);
    if (typeof parsed.error.message !== 'string') throw new Error(`error.message: ${what}`);
  }
  if (Object.getOwnPropertyNames(Object.prototype).sort().join() !== protoBefore.join()) throw new Error(`Object.prototype changed: ${what}`);
  if ((({}) as Record<string, unknown>).polluted !== undefined) throw new Error(`prototype polluted: ${what}`);
}

async function expectStillHealthy(): Promise<void> {
  const health = await send({ method: 'GET', path: '/healthz', headers: [] });
  expect(health.status).toBe(200);
  const sku = await redis.hgetall(keys.sku(SENTINEL));
  expect([Number(sku.stock), Number(sku.remaining), Number(sku.perUserLimit)]).toEqual([SENTINEL_STOCK, SENTINEL_STOCK, 1]);
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(protoBefore);
}

// ---- what to send ----

const BODY_ROUTES: { method: string; path: string; admin: boolean }[] = [
  { method: 'POST', path: '/v1/orders', admin: false },
  { method: 'POST', path: `/v1/topics/${TOPIC}/records`, admin: false },
  { method: 'PUT', path: '/v1/admin/skus/FUZZ-1', admin: true },
  { method: 'PUT', path: '/v1/admin/skus', admin: true },
  { method: 'POST', path: '/v1/admin/api-keys', admin: true },
  { method: 'PUT', path: '/v1/admin/downstreams/fuzz/rate', admin: true },
  { method: 'POST', path: '/v1/admin/downstreams/fuzz/dlq/redrive', admin: true },
];

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'APPLICATION/JSON;CHARSET=UTF-8',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'application/json; charset="utf-8"',
  'application/problem+json',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/jsonp',
  'json',
  '',
];

const deep = (n: number, open: string, close: string, inner = '1') => `${open.repeat(n)}${inner}${close.repeat(n)}`;
const validOrder = { sku: 'FUZZ-1', userId: 'fuzzer', quantity: 1, priceCents: 100 };
const withOrder = (extra: string) => `{"sku":"FUZZ-1","userId":"fuzzer","quantity":1,"priceCents":100${extra}}`;

/** Hand-picked hostile bodies, each sent to every body route. */
const HOSTILE_BODIES: (string | Buffer)[] = [
  '',
  'null',
  'true',
  '0',
  '"a string"',
  '[]',
  '{}',
  '{',
  '\ufeff{}',
  Buffer.from([0xff, 0xfe, 0x7b, 0x00, 0x7d, 0x00]),
  Buffer.from([0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x3a, 0x31, 0x7d]),
  '{"a":1}\u0000',
  deep(10_000, '[', ']'),
  deep(10_000, '{"a":', '}'),
  `{"records":[{"value":${deep(10_000, '[', ']')}}]}`,
  `{"records":[{"value":${deep(100_000, '[', ']')}}]}`,
  `{"records":[{"value":${deep(10_000, '{"a":', '}')}}]}`,
  `{"records":[{"key":"k","value":1,"headers":${deep(10_000, '{"a":', '}', '"x"')}}]}`,
  withOrder(`,"metadata":${deep(10_000, '{"a":', '}', '"x"')}`),
  `{"skus":[${deep(10_000, '[', ']')}]}`,
  '1e400',
  '-1e400',
  withOrder('').replace('"quantity":1', '"quantity":1e400'),
  withOrder('').replace('"priceCents":100', '"priceCents":-0'),
  withOrder('').replace('"priceCents":100', '"priceCents":123456789012345678901234567890'),
  withOrder('').replace('"priceCents":100', '"priceCents":"123456789012345678901234567890"'),
  withOrder('').replace('"quantity":1', '"quantity":1.0000000000000002'),
  withOrder('').replace('"quantity":1', '"quantity":-0'),
  '{"stock":1e400}',
  '{"stock":-0,"perUserLimit":-0}',
  '{"stock":"100"}',
  '{"rate":1e400}',
  '{"rate":-0}',
  '{"orderIds":["__proto__","constructor"]}',
  '{"orderIds":[],"all":true}',
  withOrder(',"sku":"FUZZ-2"'),
  '{"sku":"FUZZ-1","sku":"FUZZ-1","userId":"a","userId":"b","quantity":1,"priceCents":1}',
  '{"name":"a","name":"b"}',
  '{"records":[{"value":1}],"records":[]}',
  '{"__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{"polluted":1}}}',
  '{"prototype":{"polluted":1}}',
  withOrder(',"__proto__":{"polluted":1}'),
  withOrder(',"constructor":{"prototype":{"polluted":1}}'),
  withOrder(',"metadata":{"__proto__":{"polluted":"x"}}'),
  withOrder(',"metadata":{"__proto__":"x","constructor":"y","prototype":"z"}'),
  '{"records":[{"value":{"__proto__":{"polluted":1}},"headers":{"__proto__":"x","constructor":"y"}}]}',
  '{"records":[{"key":"__proto__","value":{"constructor":{"prototype":{"polluted":1}}}}]}',
  '{"skus":[{"sku":"__proto__","stock":1,"__proto__":{"polluted":1}}]}',
  '{"name":"__proto__"}',
  '{"name":"constructor","__proto__":{"polluted":1}}',
  '{"stock":1,"__proto__":{"stock":2}}',
  withOrder('').replace('"fuzzer"', '"\\ud800"'),
  withOrder('').replace('"fuzzer"', '"\\udfff\\ud800"'),
  withOrder('').replace('"fuzzer"', '"a\\u0000b"'),
  withOrder('').replace('"FUZZ-1"', '"FUZZ\\u0000"'),
  withOrder('').replace('"fuzzer"', `"${'\u{1F600}'.repeat(100)}"`),
  withOrder(`,"metadata":{"\\ud800":"\\udc00","\\u0000":"\\u0000"}`),
  '{"records":[{"key":"\\ud800","value":"\\udfff","headers":{"\\u0000":"\\ud800"}}]}',
  '{"name":"\\u0000"}',
  '{"records":[' + Array.from({ length: 501 }, () => '{"value":1}').join(',') + ']}',
  '{"skus":[' + Array.from({ length: 10_001 }, (_, i) => `{"sku":"S${i}","stock":1}`).join(',') + ']}',
];

const jsonValue = fc.jsonValue({ maxDepth: 6, stringUnit: 'binary' });
const protoKey = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'valueOf', 'hasOwnProperty');
/** A valid order with one field replaced, and maybe an extra (often prototype) key. */
const mutatedOrder = fc
  .record({
    field: fc.constantFrom('sku', 'userId', 'quantity', 'priceCents', 'currency', 'metadata'),
    value: fc.oneof(jsonValue, fc.double(), fc.string({ unit: 'binary' }), fc.dictionary(fc.oneof(protoKey, fc.string()), fc.string({ unit: 'binary' }))),
    extraKey: fc.option(fc.oneof(protoKey, fc.string({ unit: 'binary' }))),
    extraValue: jsonValue,
  })
  .map(({ field, value, extraKey, extraValue }) => {
    const fields = [...Object.entries({ ...validOrder, [field]: value }).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}`)];
    if (extraKey !== null) fields.push(`${JSON.stringify(extraKey)}:${JSON.stringify(extraValue) ?? 'null'}`);
    return `{${fields.join(',')}}`;
  });
const anyBody: fc.Arbitrary<string | Buffer> = fc.oneof(
  jsonValue.map((v) => JSON.stringify(v)),
  mutatedOrder,
  fc.record({ records: fc.array(fc.record({ key: fc.option(fc.string({ unit: 'binary' })), value: jsonValue, headers: fc.dictionary(fc.oneof(protoKey, fc.string()), fc.oneof(fc.string(), jsonValue)) }, { requiredKeys: [] }), { maxLength: 5 }) }).map((v) => JSON.stringify(v)),
  fc.string({ unit: 'binary' }),
  fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)),
);

describe('hostile bodies', () => {
  it('every hand-picked hostile body, on every endpoint that reads one: 2xx or a JSON 4xx, never 5xx, nothing polluted', async () => {
    for (const route of BODY_ROUTES) {
      for (const body of HOSTILE_BODIES) {
        const req: Req = { method: route.method, path: route.path, headers: [['Content-Type', 'application/json'], ...(route.admin ? adminAuth : [])], body };
        check(req, await send(req));
      }
    }
    await expectStillHealthy();
  });

  it('arbitrary JSON values, mutated orders and bytes, with arbitrary content types (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...BODY_ROUTES), anyBody, fc.constantFrom(...CONTENT_TYPES), fc.boolean(), async (route, body, type, chunked) => {
        const headers: [string, string][] = [...(type === '' ? [] : [['Content-Type', type] as [string, string]]), ...(route.admin ? adminAuth : [])];
        let payload: string | Buffer = body;
        if (chunked) {
          const bytes = Buffer.from(body);
          headers.push(['Transfer-Encoding', 'chunked']);
          payload = Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n0\r\n\r\n')]);
        }
        const req: Req = { method: route.method, path: route.path, headers, body: payload };
        check(req, await send(req));
      }),
      { numRuns: 300 },
    );
    await expectStillHealthy();
  });
});

describe('specific answers', () => {
  const post = (path: string, body: string, type = 'application/json') => send({ method: 'POST', path, headers: [['Content-Type', type]], body });
  const errorOf = (a: Answer) => (JSON.parse(a.body) as { error: { code: string; fields?: { field: string }[] } }).error;

  it('a record value nested 100,000 deep is 400 VALIDATION_FAILED naming it (JSON.stringify would overflow the stack)', async () => {
    const a = await post(`/v1/topics/${TOPIC}/records`, `{"records":[{"value":1},{"value":${deep(100_000, '[', ']')}}]}`);
    expect(a.status).toBe(400);
    expect(errorOf(a)).toMatchObject({ code: 'VALIDATION_FAILED', fields: [{ field: 'records.1.value' }] });
    // 10,000 deep too (past a few thousand levels, depending on the stack); 1,000 deep is a value like any other.
    const tenThousand = await post(`/v1/topics/${TOPIC}/records`, `{"records":[{"value":${deep(10_000, '{"a":', '}')}}]}`);
    expect([tenThousand.status, errorOf(tenThousand).code]).toEqual([400, 'VALIDATION_FAILED']);
    const ok = await post(`/v1/topics/${TOPIC}/records`, `{"records":[{"value":${deep(1000, '[', ']')}}]}`);
    expect(ok.status).toBe(202);
  });

  it('a JSON body declared in a charset other than UTF-8 is 415, UTF-8 in any spelling is read', async () => {
    for (const type of ['application/json; charset=utf-16', 'application/json; charset=latin1', 'application/json;charset="iso-8859-1"']) {
      const a = await post('/v1/orders', JSON.stringify(validOrder), type);
      expect([a.status, errorOf(a).code], type).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE']);
    }
    for (const type of ['application/json; charset=UTF-8', 'application/json;charset="utf8"', 'application/json']) {
      const a = await post('/v1/orders', JSON.stringify({ ...validOrder, sku: `CHARSET-${process.pid}`, userId: `charset-${type}` }), type);
      expect(a.status, type).toBe(202);
    }
  });

  it('prototype keys never become prototypes: refused at the top level, dropped inside maps (zod records skip __proto__)', async () => {
    const top = await post('/v1/orders', withOrder(',"__proto__":{"quantity":999}'));
    expect([top.status, errorOf(top).code]).toEqual([400, 'VALIDATION_FAILED']);
    const ctor = await post('/v1/orders', withOrder(',"constructor":{"prototype":{"polluted":"x"}}'));
    expect([ctor.status, errorOf(ctor).code]).toEqual([400, 'VALIDATION_FAILED']);

    const inMap = await post('/v1/orders', withOrder(',"metadata":{"__proto__":{"polluted":"x"},"constructor":"c","ok":"y"}').replace('"fuzzer"', '"proto-map"').replace('"FUZZ-1"', `"PROTO-${process.pid}"`));
    expect(inMap.status).toBe(202);
    const placed = JSON.parse(inMap.body) as { partition: number; offset: number };
    const logged = (await readOrders(broker.port, 'orders', [placed.partition])).find((o) => o.offset === placed.offset);
    expect(logged?.order.userId).toBe('proto-map');
    expect(logged?.order.quantity).toBe(1);
    expect(Object.getPrototypeOf(logged?.order.metadata)).toBe(Object.prototype);
    expect(Object.entries(logged?.order.metadata ?? {})).toEqual([
      ['constructor', 'c'],
      ['ok', 'y'],
    ]);
    expect((({}) as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('hostile headers, methods and paths', () => {
  const order = JSON.stringify(validOrder);
  it('odd headers: huge, duplicated, non-ASCII, bogus lengths and encodings (hand-picked)', async () => {
    const cases: [string, string][][] = [
      [['X-Huge', 'a'.repeat(20_000)]],
      [['Idempotency-Key', 'a'], ['Idempotency-Key', 'b']],
      [['Idempotency-Key', 'a'], ['idempotency-key', 'a']],
      [['Idempotency-Key', 'k\u00e9y']],
      [['Idempotency-Key', 'x'.repeat(256)]],
      [['Idempotency-Key', '']],
      [['X-API-Key', '\u00ff\u00fe']],
      [['X-API-Key', 'a'], ['X-API-Key', 'b']],
      [['Authorization', `Bearer ${ADMIN}\u00e9`]],
      [['Content-Type', 'application/json'], ['Content-Type', 'text/plain']],
      [['Content-Type', 'application/json; charset=utf-8; charset=utf-16']],
      [['Content-Encoding', 'gzip']],
      [['Expect', '100-continue']],
      [['Expect', 'something-else']],
      [['Transfer-Encoding', 'gzip, chunked']],
      [['Content-Length', '-1']],
      [['Content-Length', '1e3']],
      [['Content-Length', '99999999999999999999']],
      [['Upgrade', 'websocket'], ['Connection', 'Upgrade']],
      [['X-Forwarded-For', '1.2.3.4'], ['Forwarded', 'for=evil']],
      [['Host', 'a'], ['Host', 'b']],
    ];
    for (const extra of cases) {
      const headers: [string, string][] = [['Content-Type', 'application/json'], ...extra];
      for (const path of ['/v1/orders', '/v1/admin/skus']) {
        const req: Req = { method: path === '/v1/orders' ? 'POST' : 'GET', path, headers: path === '/v1/orders' ? headers : [...headers, ...adminAuth], body: path === '/v1/orders' ? order : undefined };
        check(req, await send(req));
      }
    }
    await expectStillHealthy();
  });

  it('arbitrary methods, paths (traversal, %00, long, unicode) and header values (property)', async () => {
    const segment = fc.oneof(
      fc.constantFrom('v1', 'orders', 'admin', 'skus', 'api-keys', 'topics', TOPIC, 'records', 'downstreams', 'dlq', 'redrive', 'metrics', 'healthz', 'readyz', '..', '.', '%00', '%2e%2e', '%2F', '%', '%zz', '%E0%A4%A', '%ff', '__proto__', 'constructor', '?', '#', '*', ';', '%0d%0a'),
      fc.string({ unit: 'binary-ascii', maxLength: 20 }).map((s) => encodeURIComponent(s)),
      fc.string({ unit: 'binary', maxLength: 10 }).map((s) => Buffer.from(s).toString('latin1').replace(/\s/g, '').replace(/./gs, (c) => (c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f ? '' : c))),
      fc.integer({ min: 100, max: 6000 }).map((n) => 'a'.repeat(n)),
    );
    const path = fc.array(segment, { minLength: 0, maxLength: 8 }).map((parts) => `/${parts.join('/')}`);
    const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'PURGE', 'LINK');
    const headerValue = fc.string({ unit: 'binary', maxLength: 64 }).map((s) => Buffer.from(s).toString('latin1').replace(/./gs, (c) => ('\r\n\0'.includes(c) ? '' : c)));
    await fc.assert(
      fc.asyncProperty(method, path, fc.boolean(), fc.constantFrom('Idempotency-Key', 'X-API-Key', 'Authorization', 'Accept', 'Content-Type', 'Cookie'), headerValue, async (m, p, admin, headerName, value) => {
        const headers: [string, string][] = [[headerName, value], ...(admin && headerName !== 'Authorization' ? adminAuth : [])];
        const req: Req = { method: m, path: p, headers, body: m === 'POST' || m === 'PUT' ? order : undefined };
        if (req.body !== undefined && headerName !== 'Content-Type') headers.push(['Content-Type', 'application/json']);
        check(req, await send(req));
      }),
      { numRuns: 300 },
    );
    await expectStillHealthy();
  });
});
