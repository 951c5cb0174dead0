/**
 * The pump: a consumer-group consumer per downstream that keeps a small window of pending
 * BullMQ jobs (a few seconds of the permitted rate). While the window is full it stops taking
 * records, so the backlog stays on disk in the broker, not in Redis or the heap.
 *
 * Offsets: per partition the pump remembers the offsets it handed to BullMQ that are not done
 * yet; workers (in any drainer process) record finished offsets in a Redis sorted set; the pump
 * commits only below the lowest offset still outstanding. Job ids are topic:partition:offset,
 * so pumping the same record again after a crash cannot create a second job while the first
 * still exists.
 *
 * Lost jobs: if Redis loses data (restarted without persistence, or the last second of an
 * appendfsync-everysec AOF), jobs the pump handed over can vanish. Every few seconds the pump
 * checks that the lowest outstanding offset of each partition still has its job (or is done);
 * if not, it forgets that partition's outstanding offsets and fetches it again from there
 * (job ids make the re-adds of surviving jobs no-ops), so the drain cannot stall for good.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../lib/src/logger.ts';
import type { LogConsumer, LogRecord, PartitionBatch } from './log-client.ts';

export interface DeliveryJob {
  orderId: string;
  body: string;
  topic: string;
  partition: number;
  offset: number;
  acceptedAt: number;
  /** Set for DLQ re-drives: not tracked for offsets. */
  redrive?: boolean;
}

export function doneKey(downstream: string, topic: string, partition: number): string {
  return `spw:done:${downstream}:${topic}:${partition}`;
}

export function jobIdFor(topic: string, partition: number, offset: number): string {
  return `${topic}:${partition}:${offset}`;
}

/** The order id inside a record (the Idempotency-Key downstream), or a stable stand-in. */
export function toJob(r: LogRecord): DeliveryJob {
  let orderId = `${r.topic}-${r.partition}-${r.offset}`;
  let acceptedAt = r.timestamp;
  try {
    const o = JSON.parse(r.value) as { orderId?: unknown; acceptedAt?: unknown };
    if (typeof o.orderId === 'string' && o.orderId !== '') orderId = o.orderId;
    if (typeof o.acceptedAt === 'number') acceptedAt = o.acceptedAt;
  } catch {
    // not JSON: delivered as is, keyed by its position
  }
  return { orderId, body: r.value, topic: r.topic, partition: r.partition, offset: r.offset, acceptedAt };
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
  /** Jobs that may be pending in BullMQ at once. */
  windowSize: () => number;
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
        // Partitions we no longer own are forgotten; their new owner starts from the committed offset.
        for (const p of [...this.parts.keys()]) if (!assigned.includes(p)) this.parts.delete(p);
      },
    );
  }

  /**
   * The window grows from RAMP_START jobs, doubling every RAMP_STEP_MS after the first batch:
   * filling a window of thousands of jobs at once keeps the process busy inserting for seconds
   * while BullMQ's worker, which fetches up to `concurrency` jobs one round trip at a time before
   * it starts any, gets a turn only between inserts (a stall after the first delivery).
   */
  private ramp(): number {
    this.firstBatchAt ??= Date.now();
    return RAMP_START * 2 ** Math.min(20, Math.floor((Date.now() - this.firstBatchAt) / RAMP_STEP_MS));
  }

  /** Pending jobs (waiting, active, delayed) in the queue. */
  private async pending(): Promise<number> {
    const c = await this.o.queue.getJobCounts('wait', 'active', 'delayed', 'prioritized');
    return (c.wait ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0);
  }

  private async onBatch(b: PartitionBatch): Promise<void> {
    const epoch = this.epochs.get(b.partition) ?? 0;
    const current = () => b.isRunning() && !this.stopping && (this.epochs.get(b.partition) ?? 0) === epoch;
    let i = 0;
    this.o.log.debug({ downstream: this.o.name, partition: b.partition, records: b.records.length, first: b.records[0]?.offset }, 'pump: batch');
    while (i < b.records.length) {
      if (!current()) return;
      const pending = await this.pending();
      const room = Math.min(this.o.windowSize(), this.ramp()) - pending;
      if (room <= 0) {
        await b.heartbeat();
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      // Small chunks while the window is nearly empty (workers get their first jobs after one
      // short MULTI, not after 500 job inserts), big ones once it holds some.
      const chunk = b.records.slice(i, i + Math.min(room, pending < 200 ? 50 : 200));
      const jobs = chunk.map(toJob);
      await this.o.queue.addBulk(jobs.map((data) => ({ name: 'deliver', data, opts: { ...this.o.jobOptions, jobId: jobIdFor(data.topic, data.partition, data.offset) } })));
      // Fetched again meanwhile: the new fetch tracks these offsets (their jobs now exist, so its re-adds are no-ops).
      if (!current()) return;
      let st = this.parts.get(b.partition);
      if (!st) {
        st = { outstanding: [], acceptedAt: new Map(), next: chunk[0].offset, committed: chunk[0].offset };
        this.parts.set(b.partition, st);
      }
      for (const j of jobs) {
        if (insertSorted(st.outstanding, j.offset)) st.acceptedAt.set(j.offset, j.acceptedAt);
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
        const done = new Set((await this.o.redis.zrangebyscore(doneKey(this.o.name, this.o.topic, partition), lo, hi)).map(Number));
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
        await this.o.redis.zremrangebyscore(doneKey(this.o.name, this.o.topic, partition), '-inf', commitTo - 1);
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
      if ((await this.o.queue.getJob(jobIdFor(this.o.topic, partition, lo))) !== undefined) continue;
      if ((await this.o.redis.zscore(doneKey(this.o.name, this.o.topic, partition), String(lo))) !== null) continue;
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
