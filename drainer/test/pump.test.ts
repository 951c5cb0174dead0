/**
 * The pump's offset bookkeeping without Redis or a broker: fakes stand in for the BullMQ queue,
 * the done marks and the consumer. Covers the recovery from a window that vanished (Redis lost
 * its data): the partition is fetched again from the lowest unfinished offset, commits never
 * pass it, and re-adding jobs that survived does not track an offset twice.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../lib/src/logger.ts';
import type { LogConsumer, LogRecord, PartitionBatch } from '../src/log-client.ts';
import { Pump, jobIdFor } from '../src/pump.ts';

const TOPIC = 'orders';

class Fakes {
  readonly jobs = new Map<string, unknown>();
  readonly done = new Set<number>();
  readonly seeks: number[] = [];
  readonly commits: number[] = [];
  onBatch: ((b: PartitionBatch) => Promise<void>) | undefined;

  readonly queue = {
    addBulk: async (jobs: { data: unknown; opts: { jobId: string } }[]) => {
      for (const j of jobs) if (!this.jobs.has(j.opts.jobId)) this.jobs.set(j.opts.jobId, j.data);
      return [];
    },
    getJobCounts: async () => ({ wait: this.jobs.size, active: 0, delayed: 0, prioritized: 0 }),
    getJob: async (id: string) => this.jobs.get(id),
  };

  readonly redis = {
    zrangebyscore: async (_key: string, lo: number, hi: number) => [...this.done].filter((o) => o >= lo && o <= hi).map(String),
    zremrangebyscore: async () => 0,
    zscore: async (_key: string, member: string) => (this.done.has(Number(member)) ? '1' : null),
  };

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

  /** Hands offsets [from, to] of partition 0 to the pump, as the consumer would. */
  async deliverBatch(from: number, to: number): Promise<number[]> {
    const taken: number[] = [];
    const records: LogRecord[] = [];
    for (let o = from; o <= to; o++) records.push({ topic: TOPIC, partition: 0, offset: o, key: 'SKU-1', value: JSON.stringify({ orderId: `o-${o}`, acceptedAt: 1 }), timestamp: 1 });
    await this.onBatch?.({ topic: TOPIC, partition: 0, records, taken: (o) => taken.push(o), heartbeat: async () => undefined, isRunning: () => true });
    return taken;
  }
}

describe('pump', () => {
  let f: Fakes;
  let pump: Pump;

  beforeEach(async () => {
    // Date drives the lost-job check; the 200 ms commit interval stays still (ticks are run by hand).
    vi.useFakeTimers({ toFake: ['Date', 'setInterval', 'clearInterval'] });
    f = new Fakes();
    pump = new Pump({
      name: 'unit',
      topic: TOPIC,
      queue: f.queue as unknown as Queue,
      redis: f.redis as unknown as Redis,
      consumer: f.consumer,
      windowSize: () => 100,
      jobOptions: {},
      log: createLogger('test', 'silent'),
    });
    await pump.start();
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
    expect([...f.jobs.keys()]).toEqual([1, 2, 3, 4].map((o) => jobIdFor(TOPIC, 0, o)));
    f.done.add(1).add(2).add(3);
    await pump.tick();
    expect(f.commits).toEqual([1, 4]);
    f.done.add(4);
    await pump.tick();
    expect(f.commits).toEqual([1, 4, 5]);
  });

  it('leaves a partition alone while its lowest outstanding job exists', async () => {
    await f.deliverBatch(0, 2);
    vi.setSystemTime(Date.now() + 6000);
    await pump.tick();
    expect(f.seeks).toEqual([]);
    expect(f.commits).toEqual([]);
  });
});
