/**
 * The pump: a consumer-group consumer per downstream that keeps a small window of pending
 * BullMQ jobs (a few seconds of the permitted rate). While the window is full it stops taking
 * records, so the backlog stays on disk in the broker, not in Redis or the heap.
 *
 * Jobs: one job carries up to `batchSize()` orders of consecutive offsets of one partition
 * (about 5 ms of the permitted rate: one order per job up to 399/s, 5 at 1,000/s, 25 at
 * 5,000/s, 100 from 20,000/s), so BullMQ's per-job cost (a few Lua calls and stream events) is
 * shared by the orders of a job. BullMQ's limiter counts jobs; the downstream's limiter is set
 * in jobs of that size, and a worker splits a job that is bigger than the size in force when it
 * runs (the rate dropped meanwhile), so no limiter slot delivers more orders than the plan
 * allows.
 *
 * A job's id is topic:partition:first-offset, and the offsets it covers are recorded in the
 * partition's ranges set (`first:last`, scored by first) before the job is added. Pumping a
 * record again (after a crash, a rebalance or a seek) first asks Redis, in one script per chunk,
 * which offsets are done (the done set) and which are covered by a job that still exists; only
 * the others get new jobs. So a re-pump cannot enqueue an order a second time while its job
 * exists, and a finished job can be removed at once (removeOnComplete) instead of being kept
 * for the re-add to be a no-op.
 *
 * Offsets: per partition the pump remembers the offsets it handed to BullMQ that are not done
 * yet; workers (in any drainer process) record finished offsets in a Redis sorted set; the pump
 * commits only below the lowest offset still outstanding.
 *
 * Lost jobs: if Redis loses data (restarted without persistence, or the last second of an
 * appendfsync-everysec AOF), jobs the pump handed over can vanish. Every few seconds the pump
 * checks that the lowest outstanding offset of each partition still has its job (or is done);
 * if not, it forgets that partition's outstanding offsets and fetches it again from there
 * (surviving jobs are recognised and left alone), so the drain cannot stall for good.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../lib/src/logger.ts';
import type { LogConsumer, LogRecord, PartitionBatch } from './log-client.ts';

/** One order inside a delivery job. */
export interface DeliveryOrder {
  orderId: string;
  body: string;
  offset: number;
  acceptedAt: number;
}

/** A BullMQ job's data: orders of consecutive offsets of one partition. */
export interface DeliveryJob {
  topic: string;
  partition: number;
  orders: DeliveryOrder[];
  /** Set for DLQ re-drives (one order each): not tracked for offsets. */
  redrive?: boolean;
}

/** Most orders per job (and per limiter slot). */
export const MAX_BATCH = 100;

/**
 * Orders per job at a rate: about 5 ms of it (limiter windows are 1.5% of the rate, three jobs
 * of this size; see windowCap), at most MAX_BATCH and at most half the burst (so
 * a limiter window of one job still fits the burst).
 */
export function batchSizeFor(rate: number, burst: number): number {
  if (!(rate > 0)) return 1;
  return Math.max(1, Math.min(MAX_BATCH, Math.floor(rate / 200), Math.floor(burst / 2)));
}

/**
 * Sorted set of a partition's done marks: each member a run of consecutive offsets `first:last`
 * (at most MAX_BATCH of them) scored by its first offset; a bare `offset`, as earlier versions
 * wrote one per order, is a run of one. See doneRuns and doneOffsets.
 */
export function doneKey(downstream: string, topic: string, partition: number): string {
  return `spw:done:${downstream}:${topic}:${partition}`;
}

/**
 * ZADD arguments (score, member, ...) marking these offsets done: one member per run of
 * consecutive offsets, at most MAX_BATCH long (so a reader finds every run that covers an offset
 * within MAX_BATCH below it).
 */
export function doneRuns(offsets: readonly number[]): (string | number)[] {
  const sorted = [...offsets].sort((a, b) => a - b);
  const args: (string | number)[] = [];
  let i = 0;
  while (i < sorted.length) {
    const first = sorted[i];
    let last = first;
    i++;
    while (i < sorted.length && sorted[i] <= last + 1 && sorted[i] - first < MAX_BATCH) last = sorted[i++];
    args.push(first, `${first}:${last}`);
  }
  return args;
}

/** The offsets from lo to hi that done-set members (read from score lo - MAX_BATCH + 1 up to hi) mark done. */
export function doneOffsets(members: readonly string[], lo: number, hi: number): number[] {
  const out: number[] = [];
  for (const m of members) {
    const colon = m.indexOf(':');
    const first = Number(colon < 0 ? m : m.slice(0, colon));
    const last = colon < 0 ? first : Number(m.slice(colon + 1));
    for (let o = Math.max(first, lo); o <= Math.min(last, hi); o++) out.push(o);
  }
  return out;
}

/** Sorted set of the offset ranges given to jobs ("first:last", scored by first). */
export function rangesKey(downstream: string, topic: string, partition: number): string {
  return `spw:ranges:${downstream}:${topic}:${partition}`;
}

/** What every job id of a partition starts with. */
function jobIdPrefix(topic: string, partition: number): string {
  return `${topic}:${partition}:`;
}

export function jobIdFor(topic: string, partition: number, firstOffset: number): string {
  return `${jobIdPrefix(topic, partition)}${firstOffset}`;
}

/** The order inside a record: its id (the Idempotency-Key downstream) or a stable stand-in. */
export function toOrder(r: LogRecord): DeliveryOrder {
  let orderId = `${r.topic}-${r.partition}-${r.offset}`;
  let acceptedAt = r.timestamp;
  try {
    const o = JSON.parse(r.value) as { orderId?: unknown; acceptedAt?: unknown };
    if (typeof o.orderId === 'string' && o.orderId !== '') orderId = o.orderId;
    if (typeof o.acceptedAt === 'number') acceptedAt = o.acceptedAt;
  } catch {
    // not JSON: delivered as is, keyed by its position
  }
  return { orderId, body: r.value, offset: r.offset, acceptedAt };
}

/** Splits orders (ascending offsets) into jobs of at most `size` consecutive offsets. */
export function toJobs(topic: string, partition: number, orders: DeliveryOrder[], size: number): DeliveryJob[] {
  const jobs: DeliveryJob[] = [];
  let cur: DeliveryOrder[] = [];
  for (const o of orders) {
    if (cur.length > 0 && (cur.length >= size || o.offset !== cur[cur.length - 1].offset + 1)) {
      jobs.push({ topic, partition, orders: cur });
      cur = [];
    }
    cur.push(o);
  }
  if (cur.length > 0) jobs.push({ topic, partition, orders: cur });
  return jobs;
}

/** What Redis knows about a run of offsets of one partition. */
export interface OffsetsState {
  /** Offsets with a done mark. */
  done: number[];
  /** Ranges given to jobs that overlap the run, with whether the job still exists. */
  ranges: { first: number; last: number; exists: boolean }[];
}

/** The pump's Redis bookkeeping (an interface so the pump's logic can be tested with fakes). */
export interface PumpStore {
  /** Done marks and job ranges for offsets lo..hi of a partition. */
  state(partition: number, lo: number, hi: number): Promise<OffsetsState>;
  /** Records the ranges of jobs about to be added. */
  recordRanges(partition: number, ranges: { first: number; last: number }[]): Promise<void>;
  /** Forgets done marks and ranges wholly below `offset` (committed). */
  trim(partition: number, offset: number): Promise<void>;
}

/**
 * KEYS: done set, ranges set. ARGV: job key prefix (queue key + topic:partition:), lo, hi, the
 * largest job (and done run). Returns {done offsets, {first, last, exists} flattened}.
 */
const OFFSETS_STATE = `
local prefix, lo, hi, span = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local done = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], lo - span + 1, hi)) do
  local first, last = string.match(m, '^(%d+):(%d+)$')
  if not first then
    first = m
    last = m
  end
  for o = math.max(tonumber(first), lo), math.min(tonumber(last), hi) do done[#done + 1] = o end
end
local ranges = {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], lo - span, hi)) do
  local first, last = string.match(m, '^(%d+):(%d+)$')
  if first and tonumber(last) >= lo then
    ranges[#ranges + 1] = first
    ranges[#ranges + 1] = last
    ranges[#ranges + 1] = redis.call('EXISTS', prefix .. first)
  end
end
return {done, ranges}`;

type StateScripted = Redis & { spwOffsetsState(numKeys: number, ...args: (string | number)[]): Promise<[string[], (string | number)[]]> };

/** PumpStore on Redis (one script call per lookup). */
export class RedisPumpStore implements PumpStore {
  private readonly r: StateScripted;

  constructor(
    redis: Redis,
    private readonly downstream: string,
    private readonly topic: string,
    /** BullMQ's key of a job id (queue.toKey). */
    private readonly jobKey: (jobId: string) => string,
  ) {
    if (!('spwOffsetsState' in redis)) redis.defineCommand('spwOffsetsState', { lua: OFFSETS_STATE });
    this.r = redis as StateScripted;
  }

  async state(partition: number, lo: number, hi: number): Promise<OffsetsState> {
    const prefix = this.jobKey(jobIdPrefix(this.topic, partition));
    const [done, flat] = await this.r.spwOffsetsState(2, doneKey(this.downstream, this.topic, partition), rangesKey(this.downstream, this.topic, partition), prefix, lo, hi, MAX_BATCH);
    const ranges: OffsetsState['ranges'] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) ranges.push({ first: Number(flat[i]), last: Number(flat[i + 1]), exists: Number(flat[i + 2]) === 1 });
    return { done: done.map(Number), ranges };
  }

  async recordRanges(partition: number, ranges: { first: number; last: number }[]): Promise<void> {
    if (ranges.length === 0) return;
    const args: (string | number)[] = [];
    for (const r of ranges) args.push(r.first, `${r.first}:${r.last}`);
    await this.r.zadd(rangesKey(this.downstream, this.topic, partition), ...args);
  }

  async trim(partition: number, offset: number): Promise<void> {
    await this.r
      .multi()
      // A done run or a job range starting MAX_BATCH below the commit ends below it.
      .zremrangebyscore(doneKey(this.downstream, this.topic, partition), '-inf', offset - MAX_BATCH - 1)
      .zremrangebyscore(rangesKey(this.downstream, this.topic, partition), '-inf', offset - MAX_BATCH - 1)
      .exec();
  }
}

/**
 * Whether an order at `offset` needs a new job: it is not done, and not covered by a job that
 * still exists (of the ranges covering the offset, the one starting last is in force: a split or
 * a re-created job starts later than the one it replaced). `done` defaults to st.done.
 */
export function needsJob(offset: number, st: OffsetsState, done: ReadonlySet<number> = new Set(st.done)): boolean {
  if (done.has(offset)) return false;
  let inForce: OffsetsState['ranges'][number] | undefined;
  for (const r of st.ranges) if (r.first <= offset && r.last >= offset && (inForce === undefined || r.first >= inForce.first)) inForce = r;
  return !(inForce !== undefined && inForce.exists);
}

/** The orders of a run that need a new job (see needsJob). */
export function ordersToAdd(orders: DeliveryOrder[], st: OffsetsState): DeliveryOrder[] {
  const done = new Set(st.done);
  return orders.filter((o) => needsJob(o.offset, st, done));
}

/** The window at start-up, and how often it may double until it reaches its size. */
const RAMP_START = 200;
const RAMP_STEP_MS = 250;

/** How often the pump checks that its outstanding jobs still exist in BullMQ. */
const LOST_CHECK_MS = 5000;

/** Inserts `v` into the ascending array `a` unless present; returns whether it was inserted. */
function insertSorted(a: number[], v: number): boolean {
  if (a.length === 0 || v > a[a.length - 1]) {
    a.push(v);
    return true;
  }
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  if (a[lo] === v) return false;
  a.splice(lo, 0, v);
  return true;
}

interface PartitionState {
  /** Ascending offsets handed to BullMQ and not known to be done. */
  outstanding: number[];
  acceptedAt: Map<number, number>;
  /** Next offset after the last record pumped. */
  next: number;
  committed: number;
}

export interface PumpOptions {
  name: string;
  topic: string;
  queue: Queue;
  redis: Redis;
  consumer: LogConsumer;
  store: PumpStore;
  /** Orders that may be pending in BullMQ at once. */
  windowSize: () => number;
  /** Orders per new job. */
  batchSize: () => number;
  jobOptions: Parameters<Queue['add']>[2];
  log: Logger;
}

export class Pump {
  private readonly parts = new Map<number, PartitionState>();
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private ticking: Promise<void> = Promise.resolve();
  private tickBusy = false;
  private lastLostCheck = Date.now();
  private firstBatchAt: number | undefined;
  /** Last "window full" debug line (at most one a second). */
  private lastFullLog = 0;
  /** Bumped per partition when it is fetched again, so a batch in hand from before stops. */
  private readonly epochs = new Map<number, number>();
  pumped = 0;

  constructor(private readonly o: PumpOptions) {}

  async start(): Promise<void> {
    this.timer = setInterval(() => {
      // One tick at a time: while Redis is unreachable a tick can outlast the interval.
      if (this.tickBusy) return;
      this.tickBusy = true;
      this.ticking = this.tick()
        .catch((err: unknown) => this.o.log.warn({ err: (err as Error).message }, 'offset commit tick failed'))
        .finally(() => {
          this.tickBusy = false;
        });
    }, 200);
    await this.o.consumer.run(
      (b) => this.onBatch(b),
      (assigned) => {
        this.o.log.info({ downstream: this.o.name, partitions: assigned }, 'pump: partitions assigned');
        // Partitions we no longer own are forgotten; their new owner starts from the committed offset.
        for (const p of [...this.parts.keys()]) if (!assigned.includes(p)) this.parts.delete(p);
      },
    );
  }

  /**
   * The window grows from RAMP_START orders, doubling every RAMP_STEP_MS after the first batch:
   * filling a window of thousands of orders at once keeps the process busy inserting for seconds
   * while BullMQ's worker, which fetches up to `concurrency` jobs one round trip at a time before
   * it starts any, gets a turn only between inserts (a stall after the first delivery).
   */
  private ramp(): number {
    this.firstBatchAt ??= Date.now();
    return RAMP_START * 2 ** Math.min(20, Math.floor((Date.now() - this.firstBatchAt) / RAMP_STEP_MS));
  }

  /** Pending jobs (waiting, active, delayed) in the queue. */
  private async pendingJobs(): Promise<number> {
    const c = await this.o.queue.getJobCounts('wait', 'active', 'delayed', 'prioritized');
    return (c.wait ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0);
  }

  private async onBatch(b: PartitionBatch): Promise<void> {
    const epoch = this.epochs.get(b.partition) ?? 0;
    const current = () => b.isRunning() && !this.stopping && (this.epochs.get(b.partition) ?? 0) === epoch;
    let i = 0;
    /** The log went on past this batch when it was fetched. */
    const more = b.records.length > 0 && b.records[b.records.length - 1].offset + 1 < b.highWatermark;
    this.o.log.debug({ downstream: this.o.name, partition: b.partition, records: b.records.length, first: b.records[0]?.offset }, 'pump: batch');
    while (i < b.records.length) {
      if (!current()) return;
      // Below this pump's own commit everything is done, and the done marks there are trimmed:
      // skip it, or those orders would get second jobs. A rebalance that leaves the partition
      // here restarts the consumer from the commit it had when the rebalance began, which the
      // pump may have passed since (seen: 62 second jobs, each taking a slot of the rate limit).
      const committed = this.parts.get(b.partition)?.committed ?? -1;
      if (b.records[i].offset < committed) {
        let j = i;
        while (j < b.records.length && b.records[j].offset < committed) j++;
        b.taken(b.records[j - 1].offset);
        i = j;
        continue;
      }
      const size = Math.max(1, this.o.batchSize());
      // A short last job of a batch the log goes on past is left for the next fetch, which starts
      // at it and brings the orders that complete it: BullMQ's limiter counts jobs, so a job of
      // fewer orders wastes part of a limiter slot (at 5,000/s jobs averaged 24.1 of 25 orders,
      // 3.6 % of the rate, from the end of each partition's fetch). Only after a part of this
      // batch was taken: a batch too small for one whole job (huge records) still makes progress.
      if (b.records.length - i < size && i > 0 && more) return;
      // Jobs pending, counted as full ones: the window is measured in orders.
      const pending = (await this.pendingJobs()) * size;
      const room = Math.min(this.o.windowSize(), this.ramp()) - pending;
      if (room <= 0) {
        if (Date.now() - this.lastFullLog >= 1000) {
          this.lastFullLog = Date.now();
          this.o.log.debug({ downstream: this.o.name, partition: b.partition, pending, left: b.records.length - i }, 'pump: window full');
        }
        await b.heartbeat();
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      // Small chunks while the window is nearly empty (workers get their first jobs after one
      // short MULTI, not after hundreds of inserts), big ones once it holds some; whole jobs
      // only (the batch's last one may be short, unless the log goes on: see above).
      const want = Math.max(size, Math.min(room, pending < 200 ? 50 : 500));
      let end = Math.min(b.records.length, i + want - (want % size));
      const short = end === b.records.length && more ? (end - i) % size : 0;
      if (short > 0 && end - short > i) end -= short;
      const chunk = b.records.slice(i, end);
      const orders = chunk.map(toOrder);
      // Orders already done, or in a job that still exists (pumped before a crash, a rebalance
      // or a seek), get no second job.
      const known = await this.o.store.state(b.partition, orders[0].offset, orders[orders.length - 1].offset);
      const jobs = toJobs(this.o.topic, b.partition, ordersToAdd(orders, known), size);
      if (!current()) return;
      if (jobs.length > 0) {
        await this.o.store.recordRanges(
          b.partition,
          jobs.map((j) => ({ first: j.orders[0].offset, last: j.orders[j.orders.length - 1].offset })),
        );
        await this.o.queue.addBulk(jobs.map((data) => ({ name: 'deliver', data, opts: { ...this.o.jobOptions, jobId: jobIdFor(data.topic, data.partition, data.orders[0].offset) } })));
      }
      this.o.log.debug({ downstream: this.o.name, partition: b.partition, orders: orders.length, jobs: jobs.length, pending, room }, 'pump: added');
      // Fetched again meanwhile: the new fetch tracks these offsets (it finds their jobs).
      if (!current()) return;
      let st = this.parts.get(b.partition);
      if (!st) {
        st = { outstanding: [], acceptedAt: new Map(), next: chunk[0].offset, committed: chunk[0].offset };
        this.parts.set(b.partition, st);
      }
      const done = new Set(known.done);
      for (const o of orders) {
        if (!done.has(o.offset) && insertSorted(st.outstanding, o.offset)) st.acceptedAt.set(o.offset, o.acceptedAt);
      }
      st.next = Math.max(st.next, chunk[chunk.length - 1].offset + 1);
      b.taken(chunk[chunk.length - 1].offset);
      this.pumped += chunk.length;
      i += chunk.length;
      // Let the workers' callbacks run between inserts while the window fills.
      await new Promise((r) => setImmediate(r));
    }
  }

  /** Learns which outstanding offsets are done and commits below the lowest one still pending. */
  async tick(): Promise<void> {
    if (!this.stopping && Date.now() - this.lastLostCheck >= LOST_CHECK_MS) {
      this.lastLostCheck = Date.now();
      await this.recoverLost();
    }
    for (const [partition, st] of this.parts) {
      if (st.outstanding.length > 0) {
        const lo = st.outstanding[0];
        const hi = st.outstanding[st.outstanding.length - 1];
        const done = new Set(doneOffsets(await this.o.redis.zrangebyscore(doneKey(this.o.name, this.o.topic, partition), lo - MAX_BATCH + 1, hi), lo, hi));
        if (done.size > 0) {
          st.outstanding = st.outstanding.filter((o) => !done.has(o));
          for (const o of done) st.acceptedAt.delete(o);
        }
      }
      // Lost the partition meanwhile (a rebalance during the awaits): its new owner started from
      // the last commit and needs the done marks above it, so neither commit nor trim them here.
      if (this.parts.get(partition) !== st) continue;
      const commitTo = st.outstanding.length > 0 ? st.outstanding[0] : st.next;
      if (commitTo > st.committed) {
        await this.o.consumer.commit(this.o.topic, partition, commitTo);
        st.committed = commitTo;
        if (this.parts.get(partition) !== st) continue;
        await this.o.store.trim(partition, commitTo);
      }
    }
  }

  /**
   * A partition whose lowest outstanding offset has neither a job nor a done mark lost its jobs
   * (Redis lost data): forget what is outstanding there and fetch it again from that offset.
   * Commits stay at or below it meanwhile, so nothing is skipped; redeliveries keep their key.
   */
  private async recoverLost(): Promise<void> {
    for (const [partition, st] of this.parts) {
      const lo = st.outstanding[0];
      if (lo === undefined) continue;
      // Done (the next tick sees it), or its job still exists.
      if (!needsJob(lo, await this.o.store.state(partition, lo, lo))) continue;
      // Still ours and unchanged after the awaits?
      if (this.parts.get(partition) !== st || st.outstanding[0] !== lo) continue;
      this.o.log.warn({ downstream: this.o.name, partition, offset: lo, outstanding: st.outstanding.length }, 'jobs missing from the window (Redis lost data?): fetching the partition again');
      this.epochs.set(partition, (this.epochs.get(partition) ?? 0) + 1);
      st.outstanding = [];
      st.acceptedAt.clear();
      st.next = lo;
      this.o.consumer.seek(this.o.topic, partition, lo);
    }
  }

  /** Age (ms) of the oldest order pumped and not yet done, per owned partition. */
  oldestPending(now = Date.now()): Map<number, number> {
    const out = new Map<number, number>();
    for (const [p, st] of this.parts) {
      const first = st.outstanding[0];
      out.set(p, first === undefined ? 0 : Math.max(0, now - (st.acceptedAt.get(first) ?? now)));
    }
    return out;
  }

  /** Stops taking records (in-flight deliveries continue). */
  halt(): void {
    this.stopping = true;
  }

  /** Commits what is done and leaves the group. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    await this.ticking;
    await this.tick().catch((err: unknown) => this.o.log.warn({ err: (err as Error).message }, 'final commit failed'));
    await this.o.consumer.stop();
  }
}
