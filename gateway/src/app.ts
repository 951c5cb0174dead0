/**
 * The gateway's express app, built from its dependencies without listening (tests start it on
 * port 0). Hot path (POST /v1/orders): rate limit → backlog admission → lean body read →
 * validation → one atomic Redis script (idempotency, stock, per-user limit) → durable append
 * (acks=-1) → 202. A failed append gives the reservation back. Responses are written directly
 * (no ETag hashing, no res.json), and every answer has the JSON error shape on failure. The hot
 * path is dispatched in front of express's router (still inside this express app); every other
 * route goes through express.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { Redis } from 'ioredis';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { z } from 'zod';
import type { Logger } from '../../lib/src/logger.ts';
import { orderRequestSchema, SKU_PATTERN, type Order } from '../../lib/src/order.ts';
import { keys } from '../../lib/src/redis-keys.ts';
import type { Admission } from './admission.ts';
import { readJsonBody } from './body.ts';
import { downstreamAdmin } from './downstream-admin.ts';
import type { GatewayConfig } from './config.ts';
import { HttpError, sendError, sendJson, toHttpError } from './http-errors.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { Publisher } from './publisher.ts';
import type { Quotas } from './quotas.ts';
import { checkOrder } from './order-check.ts';

export interface GatewayDeps {
  config: GatewayConfig;
  redis: Redis;
  publisher: Publisher;
  quotas: Quotas;
  admission: Admission;
  limiter: RateLimiterAbstract | null;
  metrics: GatewayMetrics;
  log: Logger;
  /** True once SIGTERM arrived: new orders get 503 and /readyz fails. */
  isStopping?: () => boolean;
}

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
const MAX_RECORDS = 500;

const skuLoad = z.strictObject({ stock: z.number().int().min(0).max(1_000_000_000), perUserLimit: z.number().int().min(0).max(1_000_000).default(0) });
const bulkLoad = z.strictObject({
  skus: z
    .array(z.strictObject({ sku: z.string().regex(SKU_PATTERN), stock: z.number().int().min(0).max(1_000_000_000), perUserLimit: z.number().int().min(0).max(1_000_000).default(0) }))
    .min(1)
    .max(10_000),
});
const recordsBody = z.strictObject({
  records: z
    .array(z.strictObject({ key: z.string().max(1024).nullable().optional(), value: z.unknown(), headers: z.record(z.string().max(256), z.string().max(4096)).optional() }))
    .min(1)
    .max(MAX_RECORDS),
});
const apiKeyBody = z.strictObject({ name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/) });

function validationError(issues: z.core.$ZodIssue[]): HttpError {
  const fields = issues.map((i) => ({ field: i.path.length > 0 ? i.path.join('.') : i.code === 'unrecognized_keys' ? (i as { keys: string[] }).keys.join(',') : '(body)', message: i.message }));
  return new HttpError(400, 'VALIDATION_FAILED', `invalid fields: ${[...new Set(fields.map((f) => f.field))].join(', ')}`, { fields });
}

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) throw validationError(r.error.issues);
  return r.data;
}

function sha256(s: string | Buffer): string {
  return createHash('sha256').update(s).digest('hex');
}

/** A key's public id: the first 12 hex digits of its stored hash. */
function keyIdOf(hash: string): string {
  return hash.slice(0, 12);
}

export function buildApp(deps: GatewayDeps): Express {
  const { config, redis, publisher, quotas, admission, limiter, metrics, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', false);

  const count = (route: string, status: number, code = '') => metrics.requests.inc({ route, status: String(status), code });
  const fail = (res: ServerResponse, route: string, err: unknown) => {
    const e = toHttpError(err);
    if (e.status >= 500 && e.code === 'INTERNAL') log.error({ err, route }, 'request failed');
    count(route, e.status, e.code);
    sendError(res, e);
    return e;
  };

  // ---- client identity: API key (hashed in Redis, cached briefly so rotation needs no restart) ----
  // A key created through another gateway process is unknown here until the next reload: on a
  // miss, reload once the cache is a second old, so a new key works at once (revocation still
  // takes up to 5 s), while unknown keys cost at most one HGETALL per second.
  let apiKeyCache = { at: 0, map: new Map<string, string>() };
  let apiKeyLoad: Promise<void> | null = null;
  const reloadApiKeys = () =>
    (apiKeyLoad ??= redis
      .hgetall(keys.apiKeys())
      .then((h) => {
        apiKeyCache = { at: Date.now(), map: new Map(Object.entries(h)) };
      })
      .finally(() => {
        apiKeyLoad = null;
      }));
  async function clientOf(req: IncomingMessage): Promise<{ id: string; name: string | null }> {
    try {
      return await identify(req);
    } catch (err) {
      if (err instanceof HttpError) throw err;
      log.warn({ err: (err as Error).message }, 'API key lookup failed');
      throw new HttpError(503, 'QUOTAS_UNAVAILABLE', 'the key store is unavailable; retry shortly', {}, { 'retry-after': '1' });
    }
  }
  async function identify(req: IncomingMessage): Promise<{ id: string; name: string | null }> {
    const given = req.headers['x-api-key'];
    if (typeof given === 'string' && given !== '') {
      if (Date.now() - apiKeyCache.at > 5000) await reloadApiKeys();
      const hash = sha256(given);
      let name = apiKeyCache.map.get(hash);
      if (name === undefined && Date.now() - apiKeyCache.at > 1000) {
        await reloadApiKeys();
        name = apiKeyCache.map.get(hash);
      }
      if (name === undefined) throw new HttpError(401, 'INVALID_API_KEY', 'unknown API key');
      return { id: `key:${name}`, name };
    }
    if (config.requireApiKey) throw new HttpError(401, 'API_KEY_REQUIRED', 'an X-API-Key header is required');
    return { id: `ip:${req.socket.remoteAddress ?? 'unknown'}`, name: null };
  }

  async function rateLimit(clientId: string, res: ServerResponse): Promise<void> {
    if (limiter === null) return;
    try {
      const r = await limiter.consume(clientId, 1);
      res.setHeader('ratelimit-limit', String(limiter.points));
      res.setHeader('ratelimit-remaining', String(r.remainingPoints));
      res.setHeader('ratelimit-reset', String(Math.ceil(r.msBeforeNext / 1000)));
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        const reset = Math.max(1, Math.ceil(err.msBeforeNext / 1000));
        throw new HttpError(429, 'RATE_LIMITED', 'too many requests from this client', { retryAfterSeconds: reset }, {
          'retry-after': String(reset),
          'ratelimit-limit': String(limiter.points),
          'ratelimit-remaining': '0',
          'ratelimit-reset': String(reset),
        });
      }
      throw err;
    }
  }

  function assertAdmitting(): void {
    if (deps.isStopping?.()) throw new HttpError(503, 'SHUTTING_DOWN', 'this gateway is stopping; retry on another', {}, { 'retry-after': '1' });
    if (admission.shedding) {
      const s = admission.retryAfterSeconds();
      throw new HttpError(503, 'BACKLOG_FULL', 'the buffer is too far behind; retry later', { etaSeconds: Math.round(admission.etaSeconds) }, { 'retry-after': String(s) });
    }
  }

  // ---- POST /v1/orders: the hot path ----
  // Served in front of express (see the end of buildApp) and written against node:http alone:
  // no router, URL parsing or prototype swaps per order. Client identity is only worked out when
  // something needs it (API keys, rate limits); the request is hashed only for an
  // Idempotency-Key; the body is checked by hand and only what that check refuses goes through
  // zod (same answers); the order's status is recorded in the next turn's batched script call.
  const inFlight = new Map<string, Promise<Answer>>();

  async function waitForStored(idemKey: string, hash: string): Promise<Answer | null> {
    const deadline = Date.now() + config.appendTimeoutMs + 2000;
    while (Date.now() < deadline) {
      const v = await redis.get(idemKey);
      if (v === null) return null; // the first attempt failed and gave its claim back
      const stored = parseStored(v);
      if (stored.hash !== hash) throw new HttpError(422, 'IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different body');
      if (stored.done) return { status: stored.status, body: stored.body };
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new HttpError(503, 'BUFFER_UNAVAILABLE', 'the first request with this Idempotency-Key is still in flight', {}, { 'retry-after': '1' });
  }

  async function admitOrder(req: IncomingMessage, res: ServerResponse): Promise<Answer> {
    let clientName: string | null = null;
    const apiKey = req.headers['x-api-key'];
    if (limiter !== null || config.requireApiKey || (typeof apiKey === 'string' && apiKey !== '')) {
      const client = await clientOf(req);
      clientName = client.name;
      await rateLimit(client.id, res);
    }
    assertAdmitting();
    const body = await readJsonBody(req, config.bodyLimitBytes);
    const order = checkOrder(body.value) ?? parse(orderRequestSchema, body.value);
    const rawKey = req.headers['idempotency-key'];
    let idemKey: string | null = null;
    if (rawKey !== undefined) {
      if (typeof rawKey !== 'string' || !IDEMPOTENCY_KEY.test(rawKey)) {
        throw new HttpError(400, 'VALIDATION_FAILED', 'invalid fields: Idempotency-Key', { fields: [{ field: 'Idempotency-Key', message: '1-255 visible ASCII characters' }] });
      }
      idemKey = keys.idempotency(clientName ?? 'public', rawKey);
    }
    // Only needed to tell a retry from a reuse of the same Idempotency-Key.
    const hash = idemKey === null ? '' : sha256(body.raw).slice(0, 32);
    for (let attempt = 0; ; attempt++) {
      const orderId = randomUUID();
      let reserved;
      try {
        reserved = await quotas.reserve({ sku: order.sku, userId: order.userId, quantity: order.quantity, idempotencyKey: idemKey, requestHash: hash, orderId });
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'quota script failed');
        throw new HttpError(503, 'QUOTAS_UNAVAILABLE', 'the quota store is unavailable; retry shortly', {}, { 'retry-after': '1' });
      }
      switch (reserved.kind) {
        case 'SOLD_OUT':
          throw new HttpError(409, 'SOLD_OUT', `SKU ${order.sku} is sold out`, { sku: order.sku, remaining: reserved.remaining });
        case 'PURCHASE_LIMIT_REACHED':
          throw new HttpError(409, 'PURCHASE_LIMIT_REACHED', `user ${order.userId} reached the purchase limit for ${order.sku}`, { sku: order.sku });
        case 'UNKNOWN_SKU':
          throw new HttpError(404, 'UNKNOWN_SKU', `SKU ${order.sku} is not on sale`, { sku: order.sku });
        case 'DUPLICATE': {
          const stored = parseStored(reserved.stored);
          if (stored.hash !== hash) throw new HttpError(422, 'IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different body');
          if (stored.done) return { status: stored.status, body: stored.body };
          const local = idemKey !== null ? inFlight.get(idemKey) : undefined;
          const answer = local ? await local : await waitForStored(idemKey as string, hash);
          if (answer !== null) return answer;
          if (attempt >= 2) throw new HttpError(503, 'BUFFER_UNAVAILABLE', 'the buffer is unavailable; retry shortly', {}, { 'retry-after': '1' });
          continue; // the first attempt gave its claim back: this one tries afresh
        }
        case 'OK': {
          // Object.assign, not { ...order, orderId, acceptedAt }: V8 (node 20) takes a slow path,
          // about 2 µs, for an object spread followed by more properties. Same keys, same order.
          const work = appendOrder(Object.assign({}, order, { orderId, acceptedAt: Date.now() }), idemKey, hash);
          if (idemKey !== null) {
            inFlight.set(idemKey, work);
            void work.then(
              () => inFlight.delete(idemKey),
              () => inFlight.delete(idemKey),
            );
          }
          // (return await: one promise hop fewer than returning the promise from an async function)
          return await work;
        }
      }
    }
  }

  async function appendOrder(order: Order, idemKey: string | null, hash: string): Promise<Answer> {
    let placement;
    try {
      // The publisher answers within config.appendTimeoutMs (one deadline per publisher, not a timer per order).
      placement = await publisher.publish({ topic: config.ordersTopic, key: order.sku, value: JSON.stringify(order), headers: { 'order-id': order.orderId } });
    } catch (err) {
      // Never 202 an order that is not in the buffer: give the reservation back and say so.
      // If the append might still land (timeout), mark the order so the drainer skips it.
      await Promise.allSettled([
        quotas.release({ sku: order.sku, userId: order.userId, quantity: order.quantity, idempotencyKey: idemKey, orderId: order.orderId }),
        redis.hset(keys.order(order.orderId), 'status', 'rejected', 'rejectedAt', String(Date.now())).then(() => redis.expire(keys.order(order.orderId), config.orderStatusTtlS)),
      ]);
      log.warn({ orderId: order.orderId, err: (err as Error).message }, 'append failed; reservation given back');
      throw new HttpError(503, 'BUFFER_UNAVAILABLE', 'the buffer is unavailable; retry shortly', {}, { 'retry-after': '1' });
    }
    // The orderId is a UUID and the rest are numbers: nothing to escape.
    const body = `{"orderId":"${order.orderId}","status":"accepted","partition":${placement.partition},"offset":${placement.offset},"estimatedDeliverySeconds":${Math.round(admission.etaSeconds)}}`;
    // The status record (fields and TTL) joins the next intake call to Redis (quotas.ts), with
    // the status records and new orders of that turn.
    const writes: Promise<unknown>[] = [quotas.recordAccepted(order.orderId, order.acceptedAt, order.sku, placement.partition, placement.offset, config.orderStatusTtlS)];
    if (idemKey !== null) writes.push(redis.set(idemKey, `D|${hash}|202|${body}`, 'KEEPTTL'));
    // The order is durable: a failure to record its status must not turn the 202 into an error.
    const recorded = writes.length === 1 ? writes[0] : Promise.all(writes);
    recorded.catch((err: unknown) => log.error({ err: (err as Error).message, orderId: order.orderId }, 'could not record order status'));
    return { status: 202, body };
  }

  // Label sets of the accepted answer, built once (prom-client hashes them per call, but no
  // object is built per order).
  const acceptedLabels = { route: 'orders', status: '202', code: '' };
  const acceptedOutcome = { outcome: 'accepted' };
  function handleOrder(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    admitOrder(req, res).then(
      (answer) => {
        if (answer.status === 202) {
          metrics.requests.inc(acceptedLabels);
          metrics.orders.inc(acceptedOutcome);
          metrics.intake.observe(acceptedOutcome, (performance.now() - started) / 1000);
          res.writeHead(202, ['content-type', 'application/json; charset=utf-8', 'content-length', String(Buffer.byteLength(answer.body))]);
          res.end(answer.body);
          return;
        }
        count('orders', answer.status);
        metrics.orders.inc(acceptedOutcome);
        metrics.intake.observe(acceptedOutcome, (performance.now() - started) / 1000);
        sendJson(res, answer.status, answer.body);
      },
      (err: unknown) => {
        const e = fail(res, 'orders', err);
        metrics.orders.inc({ outcome: e.code });
        metrics.intake.observe({ outcome: 'rejected' }, (performance.now() - started) / 1000);
      },
    );
  }
  // Other spellings of the path (a query string, a trailing slash) reach it through express.
  app.post('/v1/orders', (req, res) => handleOrder(req, res));

  app.get('/v1/orders/:orderId', (req, res) => {
    (async () => {
      const id = req.params.orderId;
      if (!/^[0-9a-f-]{36}$/.test(id)) throw new HttpError(400, 'VALIDATION_FAILED', 'invalid fields: orderId', { fields: [{ field: 'orderId', message: 'a UUID' }] });
      // Status records still gathered in this process go first (same connection, in order).
      quotas.flushNow();
      const h = await redis.hgetall(keys.order(id));
      if (!h.status || h.status === 'rejected') throw new HttpError(404, 'ORDER_NOT_FOUND', `no order ${id}`);
      const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
      sendJson(
        res,
        200,
        JSON.stringify({
          orderId: id,
          status: h.status,
          sku: h.sku,
          partition: num(h.partition),
          offset: num(h.offset),
          acceptedAt: num(h.acceptedAt),
          deliveredAt: num(h.deliveredAt),
          deadLetteredAt: num(h.deadLetteredAt),
          reason: h.reason,
          attempts: num(h.attempts),
        }),
      );
      count('order_status', 200);
    })().catch((err: unknown) => fail(res, 'order_status', err));
  });

  // ---- POST /v1/topics/:topic/records (activity tracking, log aggregation) ----
  app.post('/v1/topics/:topic/records', (req, res) => {
    (async () => {
      const client = await clientOf(req);
      await rateLimit(client.id, res);
      if (deps.isStopping?.()) throw new HttpError(503, 'SHUTTING_DOWN', 'this gateway is stopping', {}, { 'retry-after': '1' });
      const topic = req.params.topic;
      if (!TOPIC_NAME.test(topic)) throw new HttpError(400, 'VALIDATION_FAILED', 'invalid fields: topic', { fields: [{ field: 'topic', message: '1-249 characters of [a-zA-Z0-9._-]' }] });
      const body = parse(recordsBody, (await readJsonBody(req, config.recordsBodyLimitBytes)).value);
      const values = body.records.map((r, index) => {
        try {
          return JSON.stringify(r.value ?? null);
        } catch {
          // JSON.parse takes any depth, JSON.stringify recurses: a value nested too deeply overflows the stack.
          throw new HttpError(400, 'VALIDATION_FAILED', `invalid fields: records.${index}.value`, { fields: [{ field: `records.${index}.value`, message: 'nested too deeply' }] });
        }
      });
      const results = await Promise.all(
        body.records.map((r, index) =>
          publisher.publish({ topic, key: r.key ?? null, value: values[index], headers: r.headers }).then(
            (p) => ({ index, status: 'accepted', partition: p.partition, offset: p.offset }),
            (err: unknown) => {
              const e = toHttpError(err);
              return { index, status: 'failed', error: { code: e.code, message: e.message } };
            },
          ),
        ),
      );
      const failed = results.filter((r) => r.status === 'failed').length;
      if (failed === results.length && results.every((r) => 'error' in r && r.error.code === 'UNKNOWN_TOPIC')) {
        throw new HttpError(404, 'UNKNOWN_TOPIC', `topic ${topic} does not exist; create it first (any Kafka admin tool)`);
      }
      const status = failed === 0 ? 202 : failed === results.length ? 503 : 207;
      count('topic_records', status);
      sendJson(res, status, JSON.stringify({ topic, accepted: results.length - failed, failed, results }), status === 503 ? { 'retry-after': '1' } : {});
    })().catch((err: unknown) => fail(res, 'topic_records', err));
  });

  // ---- admin ----
  const admin = express.Router();
  // Both sides are hashed first: equal-length digests compared in constant time leak neither
  // the token's bytes nor its length.
  const wantAuth = createHash('sha256').update(`Bearer ${config.adminToken}`).digest();
  admin.use((req: Request, res: Response, next: NextFunction) => {
    const token = config.adminToken;
    const given = createHash('sha256')
      .update(req.headers.authorization ?? '')
      .digest();
    if (token === '' || !timingSafeEqual(given, wantAuth)) {
      fail(res, 'admin', new HttpError(401, 'UNAUTHORIZED', token === '' ? 'the admin API is disabled (no SPILLWAY_ADMIN_TOKEN)' : 'a valid admin bearer token is required'));
      return;
    }
    next();
  });
  const adminRoute = (fn: (req: Request, res: Response) => Promise<void>) => (req: Request, res: Response) => {
    fn(req, res).catch((err: unknown) => fail(res, 'admin', err));
  };
  const skuParam = (req: Request) => {
    const sku = String(req.params.sku);
    if (!SKU_PATTERN.test(sku)) throw new HttpError(400, 'VALIDATION_FAILED', 'invalid fields: sku', { fields: [{ field: 'sku', message: '1-64 characters of [A-Za-z0-9._:-]' }] });
    return sku;
  };
  const skuView = (s: { sku: string; stock: number; remaining: number; perUserLimit: number; updatedAt: number }) => ({ ...s, sold: s.stock - s.remaining });
  admin.put(
    '/skus/:sku',
    adminRoute(async (req, res) => {
      const sku = skuParam(req);
      const body = parse(skuLoad, (await readJsonBody(req, 64 * 1024)).value);
      const s = await quotas.loadSku(sku, body.stock, body.perUserLimit);
      count('admin', 200);
      sendJson(res, 200, JSON.stringify(skuView(s)));
    }),
  );
  admin.put(
    '/skus',
    adminRoute(async (req, res) => {
      const body = parse(bulkLoad, (await readJsonBody(req, 4 * 1024 * 1024)).value);
      const loaded = [];
      for (const s of body.skus) loaded.push(skuView(await quotas.loadSku(s.sku, s.stock, s.perUserLimit)));
      count('admin', 200);
      sendJson(res, 200, JSON.stringify({ loaded: loaded.length, skus: loaded }));
    }),
  );
  admin.get(
    '/skus/:sku',
    adminRoute(async (req, res) => {
      const sku = skuParam(req);
      const s = await quotas.readSku(sku);
      if (s === null) throw new HttpError(404, 'UNKNOWN_SKU', `SKU ${sku} was never loaded`);
      count('admin', 200);
      sendJson(res, 200, JSON.stringify(skuView(s)));
    }),
  );
  admin.get(
    '/skus',
    adminRoute(async (_req, res) => {
      const names = await quotas.listSkus();
      const skus = (await Promise.all(names.map((n) => quotas.readSku(n)))).filter((s) => s !== null).map(skuView);
      count('admin', 200);
      sendJson(res, 200, JSON.stringify({ skus }));
    }),
  );
  admin.get(
    '/backlog',
    adminRoute(async (_req, res) => {
      await admission.refresh();
      count('admin', 200);
      sendJson(res, 200, JSON.stringify({ shedding: admission.shedding, etaSeconds: admission.etaSeconds, backlog: admission.backlog, budgetSeconds: config.backlogBudgetS, resumeSeconds: config.backlogResumeS, downstreams: admission.views }));
    }),
  );
  admin.post(
    '/api-keys',
    adminRoute(async (req, res) => {
      const { name } = parse(apiKeyBody, (await readJsonBody(req, 4096)).value);
      const apiKey = `spw_${randomUUID().replace(/-/g, '')}`;
      // Only the hash is stored; the key is shown once.
      const hash = sha256(apiKey);
      await redis.hset(keys.apiKeys(), hash, name);
      apiKeyCache.at = 0;
      count('admin', 201);
      sendJson(res, 201, JSON.stringify({ name, apiKey, keyId: keyIdOf(hash) }));
    }),
  );
  // Names and key ids (a prefix of the hash), never keys: to find the one to revoke when rotating.
  admin.get(
    '/api-keys',
    adminRoute(async (_req, res) => {
      const all = await redis.hgetall(keys.apiKeys());
      const list = Object.entries(all)
        .map(([hash, name]) => ({ name, keyId: keyIdOf(hash) }))
        .sort((a, b) => a.name.localeCompare(b.name) || a.keyId.localeCompare(b.keyId));
      count('admin', 200);
      sendJson(res, 200, JSON.stringify({ apiKeys: list }));
    }),
  );
  admin.delete(
    '/api-keys/:name',
    adminRoute(async (req, res) => {
      // ?keyId= revokes one key of the name (rotation: create a second key, move clients, revoke the first).
      const keyId = req.query.keyId;
      if (keyId !== undefined && typeof keyId !== 'string') throw new HttpError(400, 'VALIDATION_FAILED', 'invalid fields: keyId', { fields: [{ field: 'keyId', message: 'one keyId' }] });
      const all = await redis.hgetall(keys.apiKeys());
      const hashes = Object.entries(all)
        .filter(([h, n]) => n === req.params.name && (keyId === undefined || keyIdOf(h) === keyId))
        .map(([h]) => h);
      if (hashes.length === 0) throw new HttpError(404, 'UNKNOWN_API_KEY', `no API key named ${String(req.params.name)}${keyId === undefined ? '' : ' with that keyId'}`);
      await redis.hdel(keys.apiKeys(), ...hashes);
      apiKeyCache.at = 0;
      count('admin', 200);
      sendJson(res, 200, JSON.stringify({ name: req.params.name, revoked: hashes.length }));
    }),
  );
  admin.use('/downstreams', downstreamAdmin(redis, (res, err) => fail(res, 'admin', err)));
  app.use('/v1/admin', admin);

  // ---- health and metrics ----
  app.get('/healthz', (_req, res) => sendJson(res, 200, '{"status":"ok"}'));
  app.get('/readyz', (_req, res) => {
    (async () => {
      const redisOk = await withTimeout(redis.ping(), 1000).then(
        () => true,
        () => false,
      );
      const brokerOk = publisher.ready();
      const ok = redisOk && brokerOk && !deps.isStopping?.();
      sendJson(res, ok ? 200 : 503, JSON.stringify({ status: ok ? 'ready' : 'not_ready', redis: redisOk, broker: brokerOk, stopping: deps.isStopping?.() ?? false }));
    })().catch((err: unknown) => fail(res, 'readyz', err));
  });
  app.get('/metrics', (_req, res) => {
    (async () => {
      metrics.shedding.set(admission.shedding ? 1 : 0);
      metrics.stockRemaining.reset();
      const names = (await quotas.listSkus()).slice(0, 1000);
      for (const n of names) {
        const s = await quotas.readSku(n);
        if (s) metrics.stockRemaining.set({ sku: n }, s.remaining);
      }
      const text = await metrics.registry.metrics();
      res.writeHead(200, { 'content-type': metrics.registry.contentType });
      res.end(text);
    })().catch((err: unknown) => fail(res, 'metrics', err));
  });

  app.use((req: Request, res: Response) => {
    fail(res, 'unknown', new HttpError(404, 'NOT_FOUND', `no route for ${req.method} ${req.path}`));
  });
  // Errors thrown by express itself (e.g. a malformed URL): the JSON shape, never a stack.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    fail(res, 'unknown', err);
  });

  // The order hot path in front of express: `app` stays an express app (the http server calls
  // app(req, res), which calls app.handle), but an exact POST /v1/orders goes straight to its
  // handler; every other request takes express's usual way.
  // (app.handle is express's own dispatch method, not in its type definitions.)
  const dispatch = app as unknown as { handle: (req: IncomingMessage, res: ServerResponse, next?: NextFunction) => void };
  const viaExpress = dispatch.handle.bind(app);
  dispatch.handle = (req, res, next) => {
    if (req.url === '/v1/orders' && req.method === 'POST') handleOrder(req, res);
    else viaExpress(req, res, next);
  };
  return app;
}

interface Answer {
  status: number;
  body: string;
}

function parseStored(v: string): { hash: string; done: false } | { hash: string; done: true; status: number; body: string } {
  const parts = v.split('|');
  if (parts[0] === 'D') {
    const prefix = `${parts[0]}|${parts[1]}|${parts[2]}|`;
    return { hash: parts[1], done: true, status: Number(parts[2]), body: v.slice(prefix.length) };
  }
  return { hash: parts[1], done: false };
}

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
