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
  pumped = 0;

  constructor(private readonly o: PumpOptions) {}

  async start(): Promise<void> {
    this.timer = setInterval(() => {
      this.ticking = this.tick().catch((err: unknown) => this.o.log.warn({ err: (err as Error).message }, 'offset commit tick failed'));
    }, 200);
    await this.o.consumer.run(
      (b) => this.onBatch(b),
      (assigned) => {
        // Partitions we no longer own are forgotten; their new owner starts from the committed offset.
        for (const p of [...this.parts.keys()]) if (!assigned.includes(p)) this.parts.delete(p);
      },
    );
  }

  /** Pending jobs (waiting, active, delayed) in the queue. */
  private async pending(): Promise<number> {
    const c = await this.o.queue.getJobCounts('wait', 'active', 'delayed', 'prioritized');
    return (c.wait ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0);
  }

  private async onBatch(b: PartitionBatch): Promise<void> {
    let st = this.parts.get(b.partition);
    let i = 0;
    while (i < b.records.length) {
      if (!b.isRunning() || this.stopping) return;
      const room = this.o.windowSize() - (await this.pending());
      if (room <= 0) {
        await b.heartbeat();
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const chunk = b.records.slice(i, i + Math.min(room, 500));
      const jobs = chunk.map(toJob);
      await this.o.queue.addBulk(jobs.map((data) => ({ name: 'deliver', data, opts: { ...this.o.jobOptions, jobId: jobIdFor(data.topic, data.partition, data.offset) } })));
      if (!st) {
        st = { outstanding: [], acceptedAt: new Map(), next: chunk[0].offset, committed: chunk[0].offset };
        this.parts.set(b.partition, st);
      }
      for (const j of jobs) {
        st.outstanding.push(j.offset);
        st.acceptedAt.set(j.offset, j.acceptedAt);
      }
      st.next = chunk[chunk.length - 1].offset + 1;
      b.taken(chunk[chunk.length - 1].offset);
      this.pumped += chunk.length;
      i += chunk.length;
    }
  }

  /** Learns which outstanding offsets are done and commits below the lowest one still pending. */
  async tick(): Promise<void> {
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
      const commitTo = st.outstanding.length > 0 ? st.outstanding[0] : st.next;
      if (commitTo > st.committed) {
        await this.o.consumer.commit(this.o.topic, partition, commitTo);
        st.committed = commitTo;
        await this.o.redis.zremrangebyscore(doneKey(this.o.name, this.o.topic, partition), '-inf', commitTo - 1);
      }
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
