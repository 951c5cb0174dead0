/**
 * The Redis reference, measured in the same run on the same disk: XADD the same payloads to one
 * stream, `pipeline` commands per round trip (each round trip waits for all its replies before
 * the next is sent), with appendfsync always so every reply follows an fsync of the AOF. Then
 * XRANGE the stream back COUNT at a time, continuing after the last id read.
 */
import { RECORD_BYTES, ReadBackCheck, writeRecord, writeStampedRecord, type ReadBackSummary } from './records.ts';
import { RespError, type RespClient, type RespValue } from './resp.ts';

export interface RedisAppendResult {
  ms: number;
  pipelines: number;
  /** Round-trip time of each pipeline of XADDs. */
  latenciesMs: number[];
}

export interface RedisReadResult {
  ms: number;
  requests: number;
  check: ReadBackSummary;
}

/**
 * Encodes `XADD key * d <payload>` for records [start, start+count) into one buffer; with
 * `stampUs`, as stamped records (records.ts) carrying that send time.
 */
export function xaddPipeline(key: string, start: number, count: number, stampUs?: number): Buffer {
  const head = Buffer.from(`*5\r\n$4\r\nXADD\r\n$${Buffer.byteLength(key)}\r\n${key}\r\n$1\r\n*\r\n$1\r\nd\r\n$${RECORD_BYTES}\r\n`);
  const per = head.length + RECORD_BYTES + 2;
  const buf = Buffer.allocUnsafe(per * count);
  for (let i = 0; i < count; i++) {
    const at = i * per;
    head.copy(buf, at);
    if (stampUs === undefined) writeRecord(buf, at + head.length, start + i);
    else writeStampedRecord(buf, at + head.length, start + i, stampUs);
    buf[at + head.length + RECORD_BYTES] = 0x0d;
    buf[at + head.length + RECORD_BYTES + 1] = 0x0a;
  }
  return buf;
}

export function firstError(replies: readonly RespValue[]): RespError | undefined {
  for (const r of replies) if (r instanceof RespError) return r;
  return undefined;
}

export async function redisAppend(client: RespClient, key: string, records: number, pipeline: number): Promise<RedisAppendResult> {
  const latenciesMs: number[] = [];
  const started = performance.now();
  for (let start = 0; start < records; start += pipeline) {
    const n = Math.min(pipeline, records - start);
    const payload = xaddPipeline(key, start, n);
    const t0 = performance.now();
    const replies = await client.pipeline(payload, n);
    latenciesMs.push(performance.now() - t0);
    const err = firstError(replies);
    if (err) throw new Error(`XADD failed: ${err.message}`);
  }
  return { ms: performance.now() - started, pipelines: latenciesMs.length, latenciesMs };
}

/** One XRANGE entry is [id, [field, value, ...]]. */
function entryParts(entry: RespValue): { id: Buffer; value: Buffer } {
  if (!Array.isArray(entry) || !Buffer.isBuffer(entry[0]) || !Array.isArray(entry[1]) || !Buffer.isBuffer(entry[1][1])) {
    throw new Error('unexpected XRANGE entry shape');
  }
  return { id: entry[0], value: entry[1][1] };
}

export async function redisReadBack(client: RespClient, key: string, expected: number, count: number): Promise<RedisReadResult> {
  const check = new ReadBackCheck(expected);
  let from = '-';
  let requests = 0;
  const started = performance.now();
  for (;;) {
    const reply = await client.command(['XRANGE', key, from, '+', 'COUNT', String(count)]);
    requests++;
    if (reply instanceof RespError) throw new Error(`XRANGE failed: ${reply.message}`);
    if (!Array.isArray(reply)) throw new Error('XRANGE reply is not an array');
    let last: Buffer | undefined;
    for (const entry of reply) {
      const { id, value } = entryParts(entry);
      check.add(value, 0, value.length);
      last = id;
    }
    if (reply.length < count || !last) break;
    from = `(${last.toString('latin1')}`; // exclusive start (Redis >= 6.2)
  }
  return { ms: performance.now() - started, requests, check: check.summary() };
}
