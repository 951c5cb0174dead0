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

type ScriptFn = (...args: (string | number | (string | number)[])[]) => Promise<unknown>;

export interface ReserveRequest {
  sku: string;
  userId: string;
  quantity: number;
  idempotencyKey: string | null;
  /** Only compared for an idempotency key ('' without one). */
  requestHash: string;
  orderId: string;
}

function reserveResult(kind: unknown, value: unknown): ReserveResult {
  switch (kind) {
    case 'OK':
      return { kind: 'OK', remaining: Number(value) };
    case 'DUPLICATE':
      return { kind: 'DUPLICATE', stored: String(value) };
    case 'SOLD_OUT':
      return { kind: 'SOLD_OUT', remaining: Number(value) };
    case 'PURCHASE_LIMIT_REACHED':
      return { kind: 'PURCHASE_LIMIT_REACHED', bought: Number(value) };
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

interface PendingReserve {
  o: ReserveRequest;
  resolve: (r: ReserveResult) => void;
  reject: (e: unknown) => void;
}

interface PendingAccepted {
  orderId: string;
  acceptedAt: number;
  sku: string;
  partition: number;
  offset: number;
  ttlS: number;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * The hot path's script command. Give it to ioredis's autoPipeliningIgnoredCommands: each call
 * is a batch already, and going straight to the connection skips a Pipeline per call (the
 * one-call-in-flight rule auto-pipelining gave is kept by Quotas itself).
 */
export const INTAKE_COMMAND = 'spwIntake';

/** Most orders admitted, and most status records, in one intake call (more go in further calls). */
const MAX_PER_CALL = 500;

/**
 * Status records wait at most this long for a turn that reads new orders (whose intake call
 * they join) before they are sent on their own.
 */
const ACCEPTED_MAX_DELAY_MS = 2;

export class Quotas {
  private readonly intakeScript: ScriptFn;
  private readonly releaseScript: ScriptFn;
  private readonly loadScript: ScriptFn;
  private reserves: PendingReserve[] = [];
  private accepted: PendingAccepted[] = [];
  private flushScheduled = false;
  private acceptedTimer: NodeJS.Timeout | undefined;
  /** Intake calls sent and not answered yet. */
  private inFlight = 0;

  constructor(
    private readonly redis: Redis,
    private readonly opts: { idempotencyTtlS: number; requireKnownSku: boolean },
  ) {
    // intake takes a batch: its key count is given per call.
    redis.defineCommand(INTAKE_COMMAND, { lua: script('intake') });
    redis.defineCommand('spwRelease', { numberOfKeys: 3, lua: script('release') });
    redis.defineCommand('spwLoadSku', { numberOfKeys: 2, lua: script('load-sku') });
    const r = redis as unknown as Record<string, ScriptFn>;
    this.intakeScript = r[INTAKE_COMMAND].bind(redis);
    this.releaseScript = r.spwRelease.bind(redis);
    this.loadScript = r.spwLoadSku.bind(redis);
  }

  /**
   * The hot path's calls (reserve, recordAccepted) are gathered until the end of the event-loop
   * turn (setImmediate) and sent as one intake script call for all the orders of that turn: one
   * command per turn instead of two per order (ioredis's per-command cost and Redis's per-call
   * cost dominate at sale rates). The script takes the orders one after the other, exactly as
   * separate calls in that order would. While a call is in flight, further orders gather until
   * it is answered (as ioredis's auto-pipelining did), so a busy gateway sends fewer, larger
   * calls. Status records are not on any answer's path: they ride along with the next turn's
   * orders, or go alone after ACCEPTED_MAX_DELAY_MS; flushNow() sends them at once (status
   * reads, shutdown).
   */
  private schedule(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flush);
  }

  private scheduleAccepted(): void {
    if (this.acceptedTimer !== undefined || this.flushScheduled) return;
    this.acceptedTimer = setTimeout(this.flush, ACCEPTED_MAX_DELAY_MS);
    this.acceptedTimer.unref();
  }

  /** Sends every gathered call now, even while one is in flight (before a status read, or closing Redis). */
  flushNow(): void {
    this.send();
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.acceptedTimer !== undefined) {
      clearTimeout(this.acceptedTimer);
      this.acceptedTimer = undefined;
    }
    // Otherwise the answer of the call in flight schedules the next flush.
    if (this.inFlight === 0) this.send();
  };

  private send(): void {
    if (this.acceptedTimer !== undefined) {
      clearTimeout(this.acceptedTimer);
      this.acceptedTimer = undefined;
    }
    const reserves = this.reserves;
    const accepted = this.accepted;
    this.reserves = [];
    this.accepted = [];
    let r = 0;
    let a = 0;
    while (r < reserves.length || a < accepted.length) {
      // One status TTL per call (it is the same for every order of a gateway).
      let aEnd = Math.min(accepted.length, a + MAX_PER_CALL);
      for (let j = a + 1; j < aEnd; j++) {
        if (accepted[j].ttlS !== accepted[a].ttlS) {
          aEnd = j;
          break;
        }
      }
      const rEnd = Math.min(reserves.length, r + MAX_PER_CALL);
      this.sendIntake(reserves.slice(r, rEnd), accepted.slice(a, aEnd));
      r = rEnd;
      a = aEnd;
    }
  }

  private sendIntake(rs: PendingReserve[], as: PendingAccepted[]): void {
    const nr = rs.length;
    const na = as.length;
    const nKeys = 3 * nr + na;
    // numkeys, the keys, five shared arguments, three per order admitted, four per status record.
    const args: (string | number)[] = new Array<string | number>(1 + nKeys + 5 + 3 * nr + 4 * na);
    args[0] = nKeys;
    const argv = 1 + nKeys;
    args[argv] = this.opts.idempotencyTtlS;
    args[argv + 1] = this.opts.requireKnownSku ? '1' : '0';
    args[argv + 2] = USER_COUNTER_TTL_S;
    args[argv + 3] = na > 0 ? as[0].ttlS : 0;
    args[argv + 4] = nr;
    for (let i = 0; i < nr; i++) {
      const o = rs[i].o;
      args[1 + 3 * i] = keys.sku(o.sku);
      args[2 + 3 * i] = keys.userBought(o.sku, o.userId);
      args[3 + 3 * i] = o.idempotencyKey ?? '';
      args[argv + 5 + 3 * i] = o.quantity;
      args[argv + 6 + 3 * i] = o.requestHash;
      args[argv + 7 + 3 * i] = o.orderId;
    }
    for (let j = 0; j < na; j++) {
      const s = as[j];
      const at = argv + 5 + 3 * nr + 4 * j;
      args[1 + 3 * nr + j] = keys.order(s.orderId);
      args[at] = s.acceptedAt;
      args[at + 1] = s.sku;
      args[at + 2] = s.partition;
      args[at + 3] = s.offset;
    }
    this.inFlight++;
    this.intakeScript(args).then(
      (res) => {
        this.answered();
        const flat = res as unknown[];
        for (let i = 0; i < nr; i++) rs[i].resolve(reserveResult(flat[2 * i], flat[2 * i + 1]));
        for (const s of as) s.resolve(undefined);
      },
      (err: unknown) => {
        this.answered();
        for (const p of rs) p.reject(err);
        for (const s of as) s.reject(err);
      },
    );
  }

  private answered(): void {
    this.inFlight--;
    if (this.inFlight > 0) return;
    if (this.reserves.length > 0) this.schedule();
    else if (this.accepted.length > 0) this.scheduleAccepted();
  }

  reserve(o: ReserveRequest): Promise<ReserveResult> {
    return new Promise((resolve, reject) => {
      this.reserves.push({ o, resolve, reject });
      this.schedule();
    });
  }

  async release(o: { sku: string; userId: string; quantity: number; idempotencyKey: string | null; orderId: string }): Promise<void> {
    await this.releaseScript(keys.sku(o.sku), keys.userBought(o.sku, o.userId), o.idempotencyKey ?? '', o.quantity, o.orderId);
  }

  /** Records where an appended order landed (its status hash, with a TTL), batched (see schedule). */
  recordAccepted(orderId: string, acceptedAt: number, sku: string, partition: number, offset: number, ttlS: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.accepted.push({ orderId, acceptedAt, sku, partition, offset, ttlS, resolve, reject });
      this.scheduleAccepted();
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
