/**
 * The primary Redis reference: ioredis, the client the gateway will use. XADD of the same
 * payloads, `pipeline` commands per ioredis pipeline, each exec() awaited before the next (the
 * same shape as the raw-RESP reference in redis-streams.ts); then XRANGE back COUNT at a time.
 * Reads use ioredis's Buffer variants (values stay bytes, as with kafkajs), no string decoding.
 *
 * ioredis builds a Command object per XADD and parses replies in JS, so these figures include
 * a real client's cost; the raw-RESP figures stay as the best-case-client info rows.
 */
import { Redis } from 'ioredis';
import { ReadBackCheck, recordPayload } from './records.ts';
import type { RedisAppendResult, RedisReadResult } from './redis-streams.ts';

export async function connectIoredis(port: number, name: string): Promise<Redis> {
  // No offline queue and no retries: a dropped connection must fail the phase, not stall it.
  const redis = new Redis({ host: '127.0.0.1', port, connectionName: name, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
  await redis.connect();
  return redis;
}

export async function ioredisServerVersion(redis: Redis): Promise<string> {
  const info = await redis.info('server');
  return /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
}

/** Throws the first error of an ioredis pipeline's results. */
export function checkPipeline(results: [Error | null, unknown][] | null, what: string): void {
  if (!results) throw new Error(`${what}: pipeline was aborted`);
  for (const [err] of results) if (err) throw new Error(`${what} failed: ${err.message}`);
}

export async function ioredisAppend(redis: Redis, key: string, records: number, pipeline: number): Promise<RedisAppendResult> {
  const latenciesMs: number[] = [];
  const started = performance.now();
  for (let start = 0; start < records; start += pipeline) {
    const n = Math.min(pipeline, records - start);
    const p = redis.pipeline();
    for (let i = 0; i < n; i++) p.xadd(key, '*', 'd', recordPayload(start + i));
    const t0 = performance.now();
    checkPipeline(await p.exec(), 'XADD');
    latenciesMs.push(performance.now() - t0);
  }
  return { ms: performance.now() - started, pipelines: latenciesMs.length, latenciesMs };
}

export async function ioredisReadBack(redis: Redis, key: string, expected: number, count: number): Promise<RedisReadResult> {
  const check = new ReadBackCheck(expected);
  let from = '-';
  let requests = 0;
  const started = performance.now();
  for (;;) {
    const entries = await redis.xrangeBuffer(key, from, '+', 'COUNT', count);
    requests++;
    for (const [, fields] of entries) {
      const value = fields[1];
      if (!value) throw new Error('XRANGE entry without a value');
      check.add(value, 0, value.length);
    }
    const last = entries.at(-1);
    if (entries.length < count || !last) break;
    from = `(${last[0].toString('latin1')}`; // exclusive start (Redis >= 6.2)
  }
  return { ms: performance.now() - started, requests, check: check.summary() };
}
