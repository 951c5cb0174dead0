/**
 * The pump's offset bookkeeping without Redis or a broker: fakes stand in for the BullMQ queue,
 * the done marks, the job ranges and the consumer. Covers the recovery from a window that
 * vanished (Redis lost its data): the partition is fetched again from the lowest unfinished
 * offset, commits never pass it, and jobs that survived are not added again; jobs of several
 * orders; and a second pump (after a crash or a rebalance) that re-reads a partition adds no
 * job for an order that is done or still in a job.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../lib/src/logger.ts';
import type { LogConsumer, LogRecord, PartitionBatch } from '../src/log-client.ts';
import { Pump, jobIdFor, ordersToAdd, type DeliveryJob, type OffsetsState, type PumpStore } from '../src/pump.ts';

const TOPIC = 'orders';

class Fakes {
  readonly jobs = new Map<string, DeliveryJob>();
  readonly done = new Set<number>();
  readonly ranges: { first: number; last: number }[] = [];
  readonly seeks: number[] = [];
  readonly commits: number[] = [];
  onBatch: ((b: PartitionBatch) => Promise<void>) | undefined;

  readonly queue = {
    addBulk: async (jobs: { data: DeliveryJob; opts: { jobId: string } }[]) => {
      for (const j of jobs) if (!this.jobs.has(j.opts.jobId)) this.jobs.set(j.opts.jobId, j.data);
      return [];
    },
    getJobCounts: async () => ({ wait: this.jobs.size, active: 0, delayed: 0, prioritized: 0 }),
  };

  readonly redis = {
    zrangebyscore: async (_key: string, lo: number, hi: number) => [...this.done].filter((o) => o >= lo && o <= hi).map(String),
  };

  readonly store: PumpStore = {
    state: async (_partition, lo, hi): Promise<OffsetsState> => ({
      done: [...this.done].filter((o) => o >= lo && o <= hi),
      ranges: this.ranges.filter((r) => r.last >= lo && r.first <= hi).map((r) => ({ ...r, exists: this.jobs.has(jobIdFor(TOPIC, 0, r.first)) })),
    }),
    recordRanges: async (_partition, ranges) => {
      this.ranges.push(...ranges);
    },
    trim: async () => undefined,
  };

  /** Offsets per job, in job order. */
  jobOffsets(): number[][] {
    return [...this.jobs.values()].map((j) => j.orders.map((o) => o.offset));
  }

  /** A worker finishing a job: done marks, then the job is removed. */
  finishJob(firstOffset: number): void {
    const j = this.jobs.get(jobIdFor(TOPIC, 0, firstOffset));
    for (const o of j?.orders ?? []) this.done.add(o.offset);
    this.jobs.delete(jobIdFor(TOPIC, 0, firstOffset));
  }

  readonly consumer: LogConsumer = {
    run: async (onBatch) => {
      this.onBatch = onBatch;
    },
    commit: async (_topic, _partition, next) => {
      this.commits.push(next);
    },
    seek: (_topic, _partition, offset) => {
      this.seeks.push(offset);
    },
    stop: async () => undefined,
  };

  /** Hands offsets [from, to] of partition 0 to the pump, as the consumer would; the log ends at `highWatermark` (default: right after the batch). */
  async deliverBatch(from: number, to: number, highWatermark = to + 1): Promise<number[]> {
    const taken: number[] = [];
    const records: LogRecord[] = [];
    for (let o = from; o <= to; o++) records.push({ topic: TOPIC, partition: 0, offset: o, key: 'SKU-1', value: JSON.stringify({ orderId: `o-${o}`, acceptedAt: 1 }), timestamp: 1 });
    await this.onBatch?.({ topic: TOPIC, partition: 0, records, highWatermark, taken: (o) => taken.push(o), heartbeat: async () => undefined, isRunning: () => true });
    return taken;
  }
}

async function startPump(f: Fakes, batchSize: number): Promise<Pump> {
  const pump = new Pump({
    name: 'unit',
    topic: TOPIC,
    queue: f.queue as unknown as Queue,
    redis: f.redis as unknown as Redis,
    consumer: f.consumer,
    store: f.store,
    windowSize: () => 100,
    batchSize: () => batchSize,
    jobOptions: {},
    log: createLogger('test', 'silent'),
  });
  await pump.start();
  return pump;
}

describe('pump', () => {
  let f: Fakes;
  let pump: Pump;

  beforeEach(async () => {
    // Date drives the lost-job check; the 200 ms commit interval stays still (ticks are run by hand).
    vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval'] });
    f = new Fakes();
    pump = await startPump(f, 1);
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it('commits only below the lowest offset not yet done', async () => {
    expect(await f.deliverBatch(0, 4)).toEqual([4]);
    f.done.add(0).add(1).add(3);
    await pump.tick();
    expect(f.commits).toEqual([2]);
    f.done.add(2).add(4);
    await pump.tick();
    expect(f.commits).toEqual([2, 5]);
  });

  it('fetches a partition again from the lowest unfinished offset when its jobs vanished', async () => {
    await f.deliverBatch(0, 4);
    f.done.add(0);
    await pump.tick();
    expect(f.commits).toEqual([1]);
    // Redis comes back empty: jobs and done marks are gone.
    f.jobs.clear();
    f.done.clear();
    await pump.tick();
    expect(f.seeks).toEqual([]); // checked only every few seconds
    vi.setSystemTime(Date.now() + 6000);
    await pump.tick();
    expect(f.seeks).toEqual([1]);
    expect(f.commits).toEqual([1]);
    // The consumer fetches from 1 again; the re-added jobs are tracked once each.
    await f.deliverBatch(1, 4);
    await f.deliverBatch(3, 4);
    expect(f.jobOffsets()).toEqual([[1], [2], [3], [4]]);
    f.done.add(1).add(2).add(3);
    await pump.tick();
    expect(f.commits).toEqual([1, 4]);
    f.done.add(4);
    await pump.tick();
    expect(f.commits).toEqual([1, 4, 5]);
  });

  it('a re-read from below its own commit (a rebalance that left it the partition) adds no job there', async () => {
    // Trim as the Redis store does: done marks and ranges wholly below the commit go.
    f.store.trim = async (_partition, below) => {
      for (const o of [...f.done]) if (o < below) f.done.delete(o);
      f.ranges.splice(0, f.ranges.length, ...f.ranges.filter((r) => r.last >= below));
    };
    await f.deliverBatch(0, 4);
    for (let o = 0; o <= 4; o++) f.finishJob(o);
    await pump.tick();
    expect(f.commits).toEqual([5]);
    // The consumer rejoined and fetches again from the commit it had when the rebalance began.
    expect(await f.deliverBatch(0, 6)).toEqual([4, 6]);
    expect(f.jobOffsets()).toEqual([[5], [6]]);
  });

  it('leaves a partition alone while its lowest outstanding job exists', async () => {
    await f.deliverBatch(0, 2);
    vi.setSystemTime(Date.now() + 6000);
    await pump.tick();
    expect(f.seeks).toEqual([]);
    expect(f.commits).toEqual([]);
  });
});

describe('pump with jobs of several orders', () => {
  let f: Fakes;

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval'] });
    f = new Fakes();
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it('puts consecutive offsets into jobs of the batch size, keyed by their first offset', async () => {
    const pump = await startPump(f, 3);
    await f.deliverBatch(0, 7);
    expect(f.jobOffsets()).toEqual([
      [0, 1, 2],
      [3, 4, 5],
      [6, 7],
    ]);
    expect([...f.jobs.keys()]).toEqual([0, 3, 6].map((o) => jobIdFor(TOPIC, 0, o)));
    expect(f.ranges).toEqual([
      { first: 0, last: 2 },
      { first: 3, last: 5 },
      { first: 6, last: 7 },
    ]);
    f.finishJob(3);
    await pump.tick();
    expect(f.commits).toEqual([]); // 0..2 still pending
    f.finishJob(0);
    await pump.tick();
    expect(f.commits).toEqual([6]);
  });

  it('leaves a short last job for the next fetch while the log goes on past the batch', async () => {
    await startPump(f, 3);
    // 0..7 of a log that goes on to 19: 6..7 would be a job of 2; they stay untaken.
    expect(await f.deliverBatch(0, 7, 20)).toEqual([5]);
    expect(f.jobOffsets()).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
    // The next fetch starts at 6 and completes the job; 9..10 wait again.
    expect(await f.deliverBatch(6, 10, 20)).toEqual([8]);
    // A batch too small for one whole job is taken as it is, or a fetch of huge records would never progress.
    expect(await f.deliverBatch(9, 10, 20)).toEqual([10]);
    // At the end of the log the short job goes at once.
    expect(await f.deliverBatch(11, 12)).toEqual([12]);
    expect(f.jobOffsets()).toEqual([
      [0, 1, 2],
      [3, 4, 5],
      [6, 7, 8],
      [9, 10],
      [11, 12],
    ]);
  });

  it('a second pump re-reading the partition adds jobs only for orders neither done nor in a job', async () => {
    await startPump(f, 3);
    await f.deliverBatch(0, 8);
    // A worker finished 3..5 and delivered 0 of 0..2 (then the process died); the pump died too.
    f.finishJob(3);
    f.done.add(0);
    const before = f.jobOffsets();
    // Its successor starts from the last commit (0) and reads on; new records 9..10 arrived.
    await startPump(f, 3);
    await f.deliverBatch(0, 10);
    expect(f.jobOffsets()).toEqual([...before, [9, 10]]);
    // The job 0..2 vanished (Redis lost it): a re-read re-creates what is not done, in new ranges.
    f.jobs.delete(jobIdFor(TOPIC, 0, 0));
    await startPump(f, 3);
    await f.deliverBatch(0, 10);
    expect(f.jobOffsets()).toEqual([[6, 7, 8], [9, 10], [1, 2]]);
  });

  it('ordersToAdd trusts the range that starts last among those covering an offset', () => {
    const order = (offset: number) => ({ orderId: `o-${offset}`, body: '{}', offset, acceptedAt: 0 });
    // 10..19 was split at 15 (the original job, cut to 10..14, still exists; the split-off job is gone).
    const st: OffsetsState = {
      done: [10, 11],
      ranges: [
        { first: 10, last: 19, exists: true },
        { first: 15, last: 19, exists: false },
      ],
    };
    expect(ordersToAdd([10, 11, 12, 14, 15, 19, 20].map(order), st).map((o) => o.offset)).toEqual([15, 19, 20]);
  });
});
