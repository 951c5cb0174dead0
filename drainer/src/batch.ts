/**
 * Group commit of the workers' per-delivery Redis reads and writes: every call made in the same
 * event-loop turn goes out as one Lua call (one command, one round trip) instead of three or
 * four commands per delivery. Each caller still awaits its own result, so a worker returns to
 * BullMQ (which then marks the job completed) only after its status and done mark are in Redis.
 */
import type { Redis } from 'ioredis';
import { doneRuns } from './pump.ts';

/** Most items per Lua call (bounds the script's run time and the argument list). */
const MAX_BATCH = 500;

/**
 * The callers' promise of an add or addAll: it settles once every one of its items has a result
 * (or the first fails). Waiters are (group, index) pairs rather than closures: this runs for
 * every delivery, and tsx (esbuild keepNames) wraps each closure stored in a property in a
 * defineProperty call that costs about 0.4 µs.
 */
class Group<R> {
  private readonly out: R[];
  private left: number;
  private failed = false;

  constructor(
    size: number,
    private readonly resolve: (r: R[]) => void,
    private readonly reject: (e: unknown) => void,
  ) {
    this.out = new Array<R>(size);
    this.left = size;
  }

  settle(index: number, r: R): void {
    this.out[index] = r;
    if (--this.left === 0 && !this.failed) this.resolve(this.out);
  }

  fail(e: unknown): void {
    if (!this.failed) this.reject(e);
    this.failed = true;
  }
}

interface Waiter<R> {
  group: Group<R>;
  index: number;
}

/** Collects items during one event-loop turn and hands them to `flush` together. */
export class Batcher<T, R> {
  private items: T[] = [];
  private waiters: Waiter<R>[] = [];
  private scheduled = false;

  constructor(private readonly flush: (items: T[]) => Promise<R[]>) {}

  add(item: T): Promise<R> {
    return this.addAll([item]).then(first);
  }

  /** Several items at once (one promise for all of them). */
  addAll(items: readonly T[]): Promise<R[]> {
    if (items.length === 0) return Promise.resolve([]);
    return new Promise<R[]>((resolve, reject) => {
      const group = new Group<R>(items.length, resolve, reject);
      for (let i = 0; i < items.length; i++) this.push(items[i], { group, index: i });
    });
  }

  private push(item: T, waiter: Waiter<R>): void {
    this.items.push(item);
    this.waiters.push(waiter);
    if (this.items.length >= MAX_BATCH) this.run();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.run());
    }
  }

  private run(): void {
    this.scheduled = false;
    if (this.items.length === 0) return;
    const items = this.items;
    const waiters = this.waiters;
    this.items = [];
    this.waiters = [];
    this.flush(items).then(
      (results) => waiters.forEach((w, i) => w.group.settle(w.index, results[i])),
      (err: unknown) => {
        if (items.length === 1) {
          waiters[0].group.fail(err);
          return;
        }
        // One bad item (a key of the wrong type, say) must not fail everyone who shared the
        // turn: each item is tried on its own, so only the callers whose item fails see an error.
        // (A write script that failed part-way may have written the items before the bad one;
        // writing them again is harmless: statuses and done marks are set, and the per-second
        // delivery counter may count them twice once.)
        items.forEach((item, i) => {
          this.flush([item]).then(
            (r) => waiters[i].group.settle(waiters[i].index, r[0]),
            (e: unknown) => waiters[i].group.fail(e),
          );
        });
      },
    );
  }
}

function first<R>(results: R[]): R {
  return results[0];
}

/** What a worker needs to know of an order before delivering it (see DeliveryWrites.statusOf). */
export const DELIVERED_HERE = 'delivered-here';

/** Per key: DELIVERED_HERE if ARGV[1] (deliveredAt:<downstream>) is set, else its status or ''. */
const STATUS_OF = `
local out = {}
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'status', ARGV[1])
  if v[2] then out[i] = '${DELIVERED_HERE}' else out[i] = v[1] or '' end
end
return out`;

/**
 * For each order delivered: its status hash (status, deliveredAt, deliveredAt:<downstream>,
 * attempts; TTL refreshed); and the done marks of those not re-driven, one run of consecutive
 * offsets per member of their partition's done set (see doneRuns in pump.ts). The count is added
 * to the downstream's per-second delivery counter (the rate controller's measure, fleet-wide).
 * KEYS: the n order keys, the done keys, then the counter. ARGV: ttl, now, deliveredAt field, n,
 * the attempts of each order, then (done key's index among the done keys, score, member) per run.
 */
const DELIVERED = `
local ttl, now, field, n = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local counter = KEYS[#KEYS]
redis.call('INCRBY', counter, n)
redis.call('EXPIRE', counter, 60)
for i = 1, n do
  redis.call('HSET', KEYS[i], 'status', 'delivered', 'deliveredAt', now, field, now, 'attempts', ARGV[4 + i])
  redis.call('EXPIRE', KEYS[i], ttl)
end
for j = 5 + n, #ARGV, 3 do
  redis.call('ZADD', KEYS[n + tonumber(ARGV[j])], ARGV[j + 1], ARGV[j + 2])
end
return n`;

/**
 * A job's start against its second's quota (fleet-wide), and its orders' statuses (as STATUS_OF)
 * in the same round trip: adds the job's orders to the second's count of orders started and, if
 * the job may go out, answers 1 followed by the statuses. It may while the middle of the job is
 * within the quota, so a second ends within half a job of it; otherwise its orders are taken
 * back off the count and it answers 0 alone. Once a second has its quota, BullMQ's limiter key is
 * held closed until that second ends, as Queue.rateLimit does (a value no count reaches, with
 * that TTL), so no worker starts another job meanwhile; the hold is only ever extended, never
 * shortened, so no limiter window ends sooner than its duration. (When the hold ended as soon as
 * jobs started to count against the next second, a job's expected arrival time before the end,
 * the window that opened then had about half its orders arrive in this second: at 5,000/s,
 * pairs of seconds such as +3.2 % then -3.3 %.) KEYS: the second's started counter, the limiter
 * key, then the job's order keys. ARGV: the quota, now (ms), when the second ends (ms), the
 * deliveredAt field.
 */
const START = `
local n, quota, now, secondEnd, field = #KEYS - 2, tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local count = redis.call('INCRBY', KEYS[1], n)
redis.call('EXPIRE', KEYS[1], 60)
local ok = 1
if count - n / 2 > quota then
  redis.call('DECRBY', KEYS[1], n)
  ok = 0
end
if ok == 0 or count >= quota then
  local left = secondEnd - now
  if left > 0 and redis.call('PTTL', KEYS[2]) < left then
    redis.call('SET', KEYS[2], 9007199254740991, 'PX', left)
  end
end
if ok == 0 then return {0} end
local out = {1}
for i = 3, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'status', field)
  if v[2] then out[i - 1] = '${DELIVERED_HERE}' else out[i - 1] = v[1] or '' end
end
return out`;

type Scripted = Redis & {
  spwStatusOf(numKeys: number, ...args: string[]): Promise<string[]>;
  spwDelivered(numKeys: number, ...args: (string | number)[]): Promise<number>;
  spwStart(numKeys: number, ...args: (string | number)[]): Promise<[number, ...string[]]>;
};

export interface Delivered {
  orderKey: string;
  doneKey: string;
  attempts: number;
  /** null for re-drives (not tracked for offsets). */
  offset: number | null;
}

/**
 * The per-second quota of a downstream's starts: BullMQ's limiter key of its queue, the key of a
 * second's count of orders started, and the orders a second may start now (0: no quota).
 */
export interface SecondQuota {
  limiterKey: string;
  startedKey(epochSecond: number): string;
  orders(): number;
}

/** The workers' batched Redis calls for one downstream. */
export class DeliveryWrites {
  private readonly r: Scripted;
  /** An order's status, or DELIVERED_HERE once this downstream has it (a duplicate job's order). */
  readonly statusOf: Batcher<string, string>;
  readonly delivered: Batcher<Delivered, null>;

  /**
   * `counterKey(second)`: the per-second delivery counter of the downstream; `quota`: the
   * per-second quota of starts (orders() is 0 while paused, or at rates too slow to pace).
   */
  constructor(
    redis: Redis,
    private readonly deliveredAtField: string,
    ttlSeconds: number,
    counterKey: (epochSecond: number) => string,
    private readonly quota?: SecondQuota,
  ) {
    if (!('spwStatusOf' in redis)) {
      redis.defineCommand('spwStatusOf', { lua: STATUS_OF });
      redis.defineCommand('spwDelivered', { lua: DELIVERED });
      redis.defineCommand('spwStart', { lua: START });
    }
    this.r = redis as Scripted;
    this.statusOf = new Batcher(async (orderKeys) => this.r.spwStatusOf(orderKeys.length, ...orderKeys, deliveredAtField));
    this.delivered = new Batcher<Delivered, null>(async (items) => {
      const keysArgs: string[] = [];
      const now = Date.now();
      const argv: (string | number)[] = [ttlSeconds, now, deliveredAtField, items.length];
      const offsets = new Map<string, number[]>();
      for (const d of items) {
        keysArgs.push(d.orderKey);
        argv.push(d.attempts);
        if (d.offset === null) continue;
        const list = offsets.get(d.doneKey);
        if (list) list.push(d.offset);
        else offsets.set(d.doneKey, [d.offset]);
      }
      let k = 0;
      for (const [key, list] of offsets) {
        keysArgs.push(key);
        k++;
        const runs = doneRuns(list);
        for (let i = 0; i < runs.length; i += 2) argv.push(k, runs[i], runs[i + 1]);
      }
      keysArgs.push(counterKey(Math.floor(now / 1000)));
      await this.r.spwDelivered(keysArgs.length, ...keysArgs, ...argv);
      return items.map(() => null);
    });
  }

  /**
   * Whether a job of these orders may start now (see START): null if not, else the orders'
   * statuses (as statusOf), read in the same round trip. Without a quota it always may. It
   * counts against the wall-clock second its orders are expected to reach the downstream in,
   * `leadMs` from now (the time a job's deliveries take, on average): a job started late in a
   * second is the next second's. A job refused is to go back to the window; the limiter stays
   * closed until the second it would have counted against ends.
   */
  async start(orderKeys: string[], leadMs: number): Promise<string[] | null> {
    const quota = this.quota?.orders() ?? 0;
    if (this.quota === undefined || quota <= 0) return this.statusOf.addAll(orderKeys);
    const now = Date.now();
    const lead = Math.max(0, Math.round(leadMs));
    const sec = Math.floor((now + lead) / 1000);
    const [ok, ...statuses] = await this.r.spwStart(2 + orderKeys.length, this.quota.startedKey(sec), this.quota.limiterKey, ...orderKeys, quota, now, (sec + 1) * 1000, this.deliveredAtField);
    return ok === 1 ? statuses : null;
  }
}
