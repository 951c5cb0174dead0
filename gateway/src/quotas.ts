/**
 * Stock, per-user limits and the idempotency claim, in atomic Redis Lua scripts (redis/*.lua).
 * Every decision about an order is made inside one script call, so any number of gateway
 * processes can admit concurrently without ever overselling.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { keys } from '../../lib/src/redis-keys.ts';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'redis');
const script = (name: string) => fs.readFileSync(path.join(dir, `${name}.lua`), 'utf8');

/** Per-user counters outlive any sale by this much. */
const USER_COUNTER_TTL_S = 30 * 86_400;

export type ReserveResult =
  | { kind: 'OK'; remaining: number }
  | { kind: 'DUPLICATE'; stored: string }
  | { kind: 'SOLD_OUT'; remaining: number }
  | { kind: 'PURCHASE_LIMIT_REACHED'; bought: number }
  | { kind: 'UNKNOWN_SKU' };

type ScriptFn = (...args: (string | number)[]) => Promise<unknown>;

export interface ReserveRequest {
  sku: string;
  userId: string;
  quantity: number;
  idempotencyKey: string | null;
  /** Only compared for an idempotency key ('' without one). */
  requestHash: string;
  orderId: string;
}

function reserveResult(res: [string, string | number | undefined]): ReserveResult {
  switch (res[0]) {
    case 'OK':
      return { kind: 'OK', remaining: Number(res[1]) };
    case 'DUPLICATE':
      return { kind: 'DUPLICATE', stored: String(res[1]) };
    case 'SOLD_OUT':
      return { kind: 'SOLD_OUT', remaining: Number(res[1]) };
    case 'PURCHASE_LIMIT_REACHED':
      return { kind: 'PURCHASE_LIMIT_REACHED', bought: Number(res[1]) };
    default:
      return { kind: 'UNKNOWN_SKU' };
  }
}

export interface SkuState {
  sku: string;
  stock: number;
  remaining: number;
  perUserLimit: number;
  updatedAt: number;
}

export class Quotas {
  private readonly reserveScript: ScriptFn;
  private readonly releaseScript: ScriptFn;
  private readonly loadScript: ScriptFn;
  private readonly acceptedScript: ScriptFn;
  private deferred: (() => void)[] = [];

  constructor(
    private readonly redis: Redis,
    private readonly opts: { idempotencyTtlS: number; requireKnownSku: boolean },
  ) {
    redis.defineCommand('spwReserve', { numberOfKeys: 3, lua: script('reserve') });
    redis.defineCommand('spwRelease', { numberOfKeys: 3, lua: script('release') });
    redis.defineCommand('spwLoadSku', { numberOfKeys: 2, lua: script('load-sku') });
    redis.defineCommand('spwAccepted', { numberOfKeys: 1, lua: script('accepted') });
    const r = redis as unknown as Record<string, ScriptFn>;
    this.reserveScript = r.spwReserve.bind(redis);
    this.releaseScript = r.spwRelease.bind(redis);
    this.loadScript = r.spwLoadSku.bind(redis);
    this.acceptedScript = r.spwAccepted.bind(redis);
  }

  /**
   * The hot path's calls (reserve, recordAccepted) are sent at the end of the event-loop turn
   * (setImmediate), so those of every request read and every append answered in that turn go to
   * Redis in one write: ioredis auto-pipelining alone flushes after each I/O callback
   * (process.nextTick), i.e. about once per HTTP request.
   */
  private defer(call: () => void): void {
    this.deferred.push(call);
    if (this.deferred.length === 1) setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    const calls = this.deferred;
    this.deferred = [];
    for (const call of calls) call();
  };

  reserve(o: ReserveRequest): Promise<ReserveResult> {
    return new Promise((resolve, reject) => {
      this.defer(() => {
        this.reserveScript(
          keys.sku(o.sku),
          keys.userBought(o.sku, o.userId),
          o.idempotencyKey ?? '',
          o.quantity,
          o.requestHash,
          o.orderId,
          this.opts.idempotencyTtlS,
          this.opts.requireKnownSku ? '1' : '0',
          USER_COUNTER_TTL_S,
        ).then((res) => resolve(reserveResult(res as [string, string | number | undefined])), reject);
      });
    });
  }

  async release(o: { sku: string; userId: string; quantity: number; idempotencyKey: string | null; orderId: string }): Promise<void> {
    await this.releaseScript(keys.sku(o.sku), keys.userBought(o.sku, o.userId), o.idempotencyKey ?? '', o.quantity, o.orderId);
  }

  /** Records where an appended order landed (its status hash, with a TTL), in one call. */
  recordAccepted(orderId: string, acceptedAt: number, sku: string, partition: number, offset: number, ttlS: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.defer(() => {
        this.acceptedScript(keys.order(orderId), ttlS, acceptedAt, sku, partition, offset).then(resolve, reject);
      });
    });
  }

  async loadSku(sku: string, stock: number, perUserLimit: number): Promise<SkuState> {
    const now = Date.now();
    await this.loadScript(keys.sku(sku), keys.skuIndex(), stock, perUserLimit, sku, now);
    return { sku, stock, remaining: stock, perUserLimit, updatedAt: now };
  }

  async readSku(sku: string): Promise<SkuState | null> {
    const h = await this.redis.hgetall(keys.sku(sku));
    if (!h.remaining) return null;
    return { sku, stock: Number(h.stock), remaining: Number(h.remaining), perUserLimit: Number(h.perUserLimit ?? 0), updatedAt: Number(h.updatedAt ?? 0) };
  }

  async listSkus(): Promise<string[]> {
    return (await this.redis.smembers(keys.skuIndex())).sort();
  }
}
