/**
 * The simulator's HTTP surface (node:http, no framework): `POST /orders` behind a token bucket,
 * the ledger (`GET`/`DELETE /stats`), runtime fault injection (`GET`/`PUT`/`DELETE /control`) and
 * `GET /healthz`. `createDownstreamServer` returns a server that is not listening yet.
 *
 * Order of checks on `POST /orders`: stopping/down (503) → capacity (429; the request takes no
 * service time and is not received) → Idempotency-Key (400) → body (413/400) → poison key →
 * `metadata.simulate` → random fault → added latency → 200 `{received:true, duplicate}`.
 * Everything after the capacity check has taken a token: a real service spends capacity on
 * requests it then refuses. Only 200s are deliveries; `byStatus` counts every answer to
 * `POST /orders` (not the answers to /stats, /control or /healthz).
 *
 * Depends on nothing but lib/ (logger) and its own folder.
 */
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Logger } from '../../../lib/src/logger.ts';
import { MAX_LATENCY_MS } from './config.ts';
import { Ledger } from './ledger.ts';
import { TokenBucket, retryAfterSeconds } from './token-bucket.ts';

/** Largest order body accepted (413 above). */
export const MAX_ORDER_BYTES = 1024 * 1024;
const MAX_CONTROL_BYTES = 1024 * 1024;

export interface DownstreamControl {
  /** Capacity in requests/s (0 = unlimited). */
  rate: number;
  burst: number;
  latencyMs: number;
  /** Status answered to `failKeys` and to the `failRatio` share of requests. */
  failStatus: number;
  /** Share (0..1) of admitted requests answered `failStatus` at random. */
  failRatio: number;
  /** Idempotency-Keys always answered `failStatus` (poison orders). */
  failKeys: string[];
  /** Answer 503 + Retry-After to every order. */
  down: boolean;
}

export const controlUpdateSchema = z.strictObject({
  rate: z.number().min(0).optional(),
  burst: z.number().int().min(1).optional(),
  latencyMs: z.number().int().min(0).max(MAX_LATENCY_MS).optional(),
  failStatus: z.number().int().min(400).max(599).optional(),
  failRatio: z.number().min(0).max(1).optional(),
  failKeys: z.array(z.string().min(1)).optional(),
  down: z.boolean().optional(),
});

export type ControlUpdate = z.infer<typeof controlUpdateSchema>;

export interface DownstreamServerOptions {
  /** Settings at start; DELETE /control returns to them. */
  initial: Pick<DownstreamControl, 'rate' | 'burst' | 'latencyMs'> & Partial<DownstreamControl>;
  log: Logger;
  /** Epoch ms from a monotonic source (default: performance.timeOrigin + performance.now()). */
  now?: () => number;
  /** Uniform [0, 1) for failRatio (default Math.random). */
  random?: () => number;
}

const monotonicEpochMs = (): number => performance.timeOrigin + performance.now();

function defaults(initial: DownstreamServerOptions['initial']): DownstreamControl {
  return {
    rate: initial.rate,
    burst: initial.burst,
    latencyMs: initial.latencyMs,
    failStatus: initial.failStatus ?? 500,
    failRatio: initial.failRatio ?? 0,
    failKeys: [...(initial.failKeys ?? [])],
    down: initial.down ?? false,
  };
}

type Headers = Record<string, string>;

class Reply {
  constructor(
    readonly status: number,
    readonly body: unknown,
    readonly headers: Headers = {},
  ) {}
}

function errorReply(status: number, code: string, message: string, headers: Headers = {}, extra: Record<string, unknown> = {}): Reply {
  return new Reply(status, { error: { code, message, ...extra } }, headers);
}

/** 429 and 503 mean "slow down" to the drainer, so they always carry Retry-After. */
function faultReply(status: number, code: string, message: string): Reply {
  return errorReply(status, code, message, status === 429 || status === 503 ? { 'retry-after': '1' } : {});
}

type BodyResult = { ok: true; text: string } | { ok: false };

function readBody(req: http.IncomingMessage, limit: number): Promise<BodyResult> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      resolve({ ok: false });
      return;
    }
    let size = 0;
    const parts: Buffer[] = [];
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume();
        resolve({ ok: false });
      } else parts.push(c);
    };
    req.on('data', onData);
    req.once('end', () => resolve({ ok: true, text: Buffer.concat(parts).toString('utf8') }));
    req.once('error', reject);
  });
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `"metadata": {"simulate": "4xx|5xx"}` asks for that status; anything else is ignored. */
function simulatedStatus(order: Record<string, unknown>): number | undefined {
  const meta = order.metadata;
  if (!isRecord(meta)) return undefined;
  const s = meta.simulate;
  const n = typeof s === 'string' && /^\d{3}$/.test(s) ? Number(s) : typeof s === 'number' ? s : NaN;
  return Number.isInteger(n) && n >= 400 && n <= 599 ? n : undefined;
}

export class DownstreamSimulator {
  readonly ledger = new Ledger();
  private readonly initial: DownstreamControl;
  private current: DownstreamControl;
  private failKeySet: Set<string>;
  private bucket: TokenBucket;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly log: Logger;
  private inFlightCount = 0;
  stopping = false;

  constructor(opts: DownstreamServerOptions) {
    this.now = opts.now ?? monotonicEpochMs;
    this.random = opts.random ?? Math.random;
    this.log = opts.log;
    this.initial = defaults(opts.initial);
    this.current = { ...this.initial, failKeys: [...this.initial.failKeys] };
    this.failKeySet = new Set(this.current.failKeys);
    this.bucket = new TokenBucket(this.current.rate, this.current.burst, this.now());
  }

  get control(): DownstreamControl {
    return { ...this.current, failKeys: [...this.current.failKeys] };
  }

  get inFlight(): number {
    return this.inFlightCount;
  }

  /** Applies a partial update. Changing rate or burst starts a fresh, full bucket. */
  updateControl(update: ControlUpdate): DownstreamControl {
    const next: DownstreamControl = {
      rate: update.rate ?? this.current.rate,
      burst: update.burst ?? this.current.burst,
      latencyMs: update.latencyMs ?? this.current.latencyMs,
      failStatus: update.failStatus ?? this.current.failStatus,
      failRatio: update.failRatio ?? this.current.failRatio,
      failKeys: update.failKeys ?? this.current.failKeys,
      down: update.down ?? this.current.down,
    };
    this.apply(next, update.rate !== undefined || update.burst !== undefined);
    return this.control;
  }

  /** Back to the startup settings, with a full bucket. */
  resetControl(): DownstreamControl {
    this.apply({ ...this.initial, failKeys: [...this.initial.failKeys] }, true);
    return this.control;
  }

  private apply(next: DownstreamControl, newBucket: boolean): void {
    this.current = { ...next, failKeys: [...next.failKeys] };
    this.failKeySet = new Set(next.failKeys);
    if (newBucket) this.bucket = new TokenBucket(next.rate, next.burst, this.now());
    this.log.info({ control: { ...this.current, failKeys: this.current.failKeys.length } }, 'downstream control changed');
  }

  readonly handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    this.route(req).then(
      (reply) => this.send(res, reply),
      (err: unknown) => {
        this.log.error({ err }, 'request failed');
        this.send(res, errorReply(500, 'INTERNAL', 'internal error'));
      },
    );
  };

  private send(res: http.ServerResponse, reply: Reply): void {
    if (res.headersSent || res.destroyed) return;
    const body = JSON.stringify(reply.body);
    const headers: Record<string, string | number> = {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      ...reply.headers,
    };
    // While stopping, close keep-alive connections after their answer so the server can close.
    if (this.stopping) headers.connection = 'close';
    res.writeHead(reply.status, headers);
    res.end(body);
  }

  private async route(req: http.IncomingMessage): Promise<Reply> {
    const url = new URL(req.url ?? '/', 'http://downstream');
    const method = req.method ?? 'GET';
    switch (url.pathname) {
      case '/orders':
        if (method !== 'POST') return errorReply(405, 'METHOD_NOT_ALLOWED', 'use POST /orders', { allow: 'POST' });
        return this.order(req);
      case '/stats':
        if (method === 'GET') {
          const k = url.searchParams.get('keys');
          return new Reply(200, this.ledger.snapshot(k === 'true' || k === '1'));
        }
        if (method === 'DELETE') {
          this.ledger.reset();
          return new Reply(200, this.ledger.snapshot());
        }
        return errorReply(405, 'METHOD_NOT_ALLOWED', 'use GET or DELETE /stats', { allow: 'GET, DELETE' });
      case '/control':
        if (method === 'GET') return new Reply(200, this.control);
        if (method === 'PUT') return this.putControl(req);
        if (method === 'DELETE') return new Reply(200, this.resetControl());
        return errorReply(405, 'METHOD_NOT_ALLOWED', 'use GET, PUT or DELETE /control', { allow: 'GET, PUT, DELETE' });
      case '/healthz':
        return new Reply(this.stopping ? 503 : 200, { status: this.stopping ? 'stopping' : 'ok', inFlight: this.inFlightCount });
      default:
        return errorReply(404, 'NOT_FOUND', `no route ${method} ${url.pathname}`);
    }
  }

  private async putControl(req: http.IncomingMessage): Promise<Reply> {
    const body = await readBody(req, MAX_CONTROL_BYTES);
    if (!body.ok) return errorReply(413, 'PAYLOAD_TOO_LARGE', `control body over ${MAX_CONTROL_BYTES} bytes`);
    const json = parseJson(body.text);
    if (!json.ok) return errorReply(400, 'MALFORMED_JSON', 'the body is not JSON');
    const parsed = controlUpdateSchema.safeParse(json.value);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`);
      return errorReply(400, 'VALIDATION_FAILED', problems.join('; '), {}, { problems });
    }
    return new Reply(200, this.updateControl(parsed.data));
  }

  private async order(req: http.IncomingMessage): Promise<Reply> {
    const generation = this.ledger.generation;
    const answer = (reply: Reply): Reply => {
      this.ledger.recordStatus(reply.status, generation);
      return reply;
    };
    if (this.stopping) return answer(errorReply(503, 'STOPPING', 'the downstream is shutting down', { 'retry-after': '1' }));
    const c = this.current;
    if (c.down) return answer(errorReply(503, 'DOWN', 'the downstream is down (fault injection)', { 'retry-after': '1' }));
    const admittedAt = this.now();
    const take = this.bucket.tryTake(admittedAt);
    if (!take.ok) {
      const s = retryAfterSeconds(take.retryAfterMs);
      return answer(errorReply(429, 'OVER_CAPACITY', `over capacity (${c.rate}/s, burst ${c.burst})`, { 'retry-after': String(s) }, { retryAfterSeconds: s }));
    }
    this.inFlightCount += 1;
    try {
      const reply = await this.admitted(req, admittedAt, generation);
      return answer(reply);
    } finally {
      this.inFlightCount -= 1;
    }
  }

  /** An order that took a token: decide its outcome, spend the service time, then answer. */
  private async admitted(req: http.IncomingMessage, admittedAt: number, generation: number): Promise<Reply> {
    const c = this.current;
    const header = req.headers['idempotency-key'];
    const key = typeof header === 'string' ? header.trim() : '';
    let outcome: Reply | undefined;
    if (key === '') outcome = errorReply(400, 'MISSING_IDEMPOTENCY_KEY', 'an Idempotency-Key header is required');
    const body = await readBody(req, MAX_ORDER_BYTES);
    if (outcome === undefined) {
      if (!body.ok) outcome = errorReply(413, 'PAYLOAD_TOO_LARGE', `order body over ${MAX_ORDER_BYTES} bytes`);
      else {
        const json = parseJson(body.text);
        if (!json.ok) outcome = errorReply(400, 'MALFORMED_JSON', 'the body is not JSON');
        else if (!isRecord(json.value)) outcome = errorReply(400, 'INVALID_ORDER', 'the body must be a JSON object');
        else if (this.failKeySet.has(key)) outcome = faultReply(c.failStatus, 'POISON_KEY', `Idempotency-Key ${key} is configured to fail`);
        else {
          const simulated = simulatedStatus(json.value);
          if (simulated !== undefined) outcome = faultReply(simulated, 'SIMULATED', `metadata.simulate asked for ${simulated}`);
          else if (c.failRatio > 0 && this.random() < c.failRatio) outcome = faultReply(c.failStatus, 'INJECTED_FAULT', 'random fault (failRatio)');
        }
      }
    }
    if (c.latencyMs > 0) await sleep(c.latencyMs);
    if (outcome !== undefined) return outcome;
    const recorded = this.ledger.recordDelivery(key, admittedAt, generation);
    return new Reply(200, { received: true, duplicate: recorded?.duplicate ?? false });
  }
}

export function createDownstreamServer(opts: DownstreamServerOptions): { server: http.Server; simulator: DownstreamSimulator } {
  const simulator = new DownstreamSimulator(opts);
  const server = http.createServer({ keepAliveTimeout: 5000, headersTimeout: 10_000, requestTimeout: 30_000 + MAX_LATENCY_MS }, simulator.handle);
  return { server, simulator };
}
