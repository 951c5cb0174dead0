/**
 * /v1/admin/downstreams: operate the drainers through Redis (they poll it every second, and
 * what is set here survives their restarts): pause, resume, override the rate, inspect and
 * re-drive dead letters (re-driven orders go through the same rate-limited queue).
 */
import express, { type Request, type Response, type Router } from 'express';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { keys } from '../../lib/src/redis-keys.ts';
import { readJsonBody } from './body.ts';
import { HttpError, sendJson } from './http-errors.ts';

const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const rateBody = z.strictObject({ rate: z.number().positive().max(1_000_000).nullable() });
const redriveBody = z.strictObject({ orderIds: z.array(z.string().min(1).max(128)).min(1).max(100_000).optional(), all: z.boolean().optional() });

export function downstreamAdmin(redis: Redis, onError: (res: Response, err: unknown) => void): Router {
  const r = express.Router();
  const route = (fn: (req: Request, res: Response) => Promise<void>) => (req: Request, res: Response) => {
    fn(req, res).catch((err: unknown) => onError(res, err));
  };
  const nameOf = (req: Request) => {
    const name = String(req.params.name);
    if (!NAME.test(name)) throw new HttpError(400, 'VALIDATION_FAILED', 'invalid fields: name', { fields: [{ field: 'name', message: 'a downstream name' }] });
    return name;
  };
  const view = async (name: string) => {
    const [ctl, backlog, dlq] = await Promise.all([redis.hgetall(keys.downstreamControl(name)), redis.hgetall(keys.backlog(name)), redis.zcard(keys.dlqIndex(name))]);
    const num = (v: string | undefined) => (v === undefined || v === '' ? null : Number(v));
    return {
      name,
      paused: ctl.paused === '1',
      rateOverride: num(ctl.rate),
      backlog: num(backlog.backlog),
      etaSeconds: num(backlog.etaSeconds),
      ratePerSecond: num(backlog.ratePerSecond),
      deliveryPaused: backlog.paused === '1',
      updatedAt: num(backlog.updatedAt),
      deadLetters: dlq,
    };
  };
  r.get(
    '/',
    route(async (_req, res) => {
      const names = (await redis.smembers(keys.backlogIndex())).sort();
      sendJson(res, 200, JSON.stringify({ downstreams: await Promise.all(names.map(view)) }));
    }),
  );
  r.get(
    '/:name',
    route(async (req, res) => {
      sendJson(res, 200, JSON.stringify(await view(nameOf(req))));
    }),
  );
  for (const [action, paused] of [
    ['pause', '1'],
    ['resume', '0'],
  ] as const) {
    r.post(
      `/:name/${action}`,
      route(async (req, res) => {
        const name = nameOf(req);
        await redis.hset(keys.downstreamControl(name), 'paused', paused, 'updatedAt', String(Date.now()));
        sendJson(res, 200, JSON.stringify(await view(name)));
      }),
    );
  }
  r.put(
    '/:name/rate',
    route(async (req, res) => {
      const name = nameOf(req);
      const body = rateBody.safeParse((await readJsonBody(req, 4096)).value);
      if (!body.success) throw new HttpError(400, 'VALIDATION_FAILED', 'invalid fields: rate', { fields: [{ field: 'rate', message: 'a positive number, or null to clear the override' }] });
      await redis.hset(keys.downstreamControl(name), 'rate', body.data.rate === null ? '' : String(body.data.rate), 'updatedAt', String(Date.now()));
      sendJson(res, 200, JSON.stringify(await view(name)));
    }),
  );
  r.get(
    '/:name/dlq',
    route(async (req, res) => {
      const name = nameOf(req);
      const limit = Math.min(1000, Math.max(1, Number(req.query.limit ?? 100) || 100));
      const ids = await redis.zrevrange(keys.dlqIndex(name), 0, limit - 1);
      const items = ids.length > 0 ? await redis.hmget(keys.dlqItems(name), ...ids) : [];
      const total = await redis.zcard(keys.dlqIndex(name));
      sendJson(res, 200, JSON.stringify({ downstream: name, total, items: items.filter((x): x is string => x !== null).map((x) => JSON.parse(x) as unknown) }));
    }),
  );
  r.get(
    '/:name/dlq/:orderId',
    route(async (req, res) => {
      const name = nameOf(req);
      const raw = await redis.hget(keys.dlqItems(name), String(req.params.orderId));
      if (raw === null) throw new HttpError(404, 'NOT_DEAD_LETTERED', `order ${String(req.params.orderId)} is not in ${name}'s dead letters`);
      sendJson(res, 200, raw);
    }),
  );
  r.post(
    '/:name/dlq/redrive',
    route(async (req, res) => {
      const name = nameOf(req);
      const body = redriveBody.safeParse((await readJsonBody(req, 4 * 1024 * 1024)).value);
      if (!body.success || (body.data.all !== true && body.data.orderIds === undefined)) {
        throw new HttpError(400, 'VALIDATION_FAILED', 'invalid fields: orderIds', { fields: [{ field: 'orderIds', message: 'give orderIds or "all": true' }] });
      }
      const ids = body.data.all === true ? await redis.zrange(keys.dlqIndex(name), '0', '-1') : (body.data.orderIds ?? []);
      const known = ids.length > 0 ? await redis.hmget(keys.dlqItems(name), ...ids) : [];
      const queued = ids.filter((_, i) => known[i] !== null);
      for (let i = 0; i < queued.length; i += 1000) await redis.rpush(keys.redrive(name), ...queued.slice(i, i + 1000));
      sendJson(res, 202, JSON.stringify({ downstream: name, queued: queued.length, unknown: ids.filter((_, i) => known[i] === null) }));
    }),
  );
  return r;
}
