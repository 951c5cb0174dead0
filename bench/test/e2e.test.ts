/**
 * The end-to-end runner of bench:broker (bench/lib/e2e.ts) at a small scale, against a real broker
 * process with kcat and a real kafkajs group, and against a real redis-server: the warm-up goes
 * through the same producer, topic and members before the clock starts and is left out of every
 * figure, and each measured record is consumed exactly once, unpaced and paced.
 */
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBrokerProcess, type BrokerProcess } from '../../lib/src/testing/processes.ts';
import { runEndToEnd, type E2eOptions } from '../lib/e2e.ts';
import { redisGroupSetup, spillwaySetup } from '../lib/e2e-systems.ts';
import { Cleanup } from '../lib/procs.ts';

let broker: BrokerProcess;
const cleanup = new Cleanup();
beforeAll(async () => {
  broker = await startBrokerProcess();
});
afterAll(async () => {
  await cleanup.run();
  await broker?.kill('SIGTERM');
});

function options(label: string, records: number, ratePerSec: number | null, warmup: number): E2eOptions {
  return { label, records, ratePerSec, members: 2, consumerProcesses: 1, warmup, timeoutMs: 90_000, cleanup };
}

async function logEnd(topic: string): Promise<number> {
  const admin = new Kafka({ clientId: 'e2e-test', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((n, p) => n + Number(p.high), 0);
  } finally {
    await admin.disconnect();
  }
}

describe('bench end-to-end runner', () => {
  const spillway = (topic: string) => () =>
    spillwaySetup({ kcat: 'kcat', bootstrap: broker.bootstrap, metricsPort: broker.metricsPort, brokerPid: broker.proc.pid ?? 0, topic, timeoutMs: 90_000, cleanup, commit: { mode: 'async', intervalMs: 0 }, partitionsConcurrently: 1 });

  it('Spillway (kcat -> broker -> kafkajs group): the warm-up precedes the measured records in the topic and is not counted', async () => {
    // 1,501 warm-up records: kcat holds back the last ~1 KiB of its input until more arrives,
    // so without the producer's flush the warm-up would never be consumed in full.
    const r = await runEndToEnd(options('kafka unpaced', 3000, null, 1501), spillway('e2e-unpaced'));
    expect(r.check).toMatchObject({ records: 3000, missing: 0, duplicates: 0, foreign: 0, wrongSize: 0, ok: true });
    expect(r.latency.samples).toBe(3000);
    expect(r.members.reduce((n, m) => n + m.consumed, 0)).toBe(3000);
    expect(r.warmupMs).toBeGreaterThan(0);
    expect(await logEnd('e2e-unpaced')).toBe(4501);
  }, 120_000);

  it('Spillway, paced: the records are sent at the given rate, the warm-up at the same pace', async () => {
    const r = await runEndToEnd(options('kafka paced', 2000, 4000, 1000), spillway('e2e-paced'));
    expect(r.check.ok).toBe(true);
    expect(r.latency.samples).toBe(2000);
    // 2,000 records at 4,000/s take at least half a second to send; the warm-up at that pace a quarter.
    expect(r.produce.ms).toBeGreaterThanOrEqual(490);
    expect(r.warmupMs).toBeGreaterThanOrEqual(240);
    expect(await logEnd('e2e-paced')).toBe(3000);
  }, 120_000);

  it('Redis Streams: the same runner, warm-up in the same stream, each measured record once', async () => {
    const r = await runEndToEnd(options('redis unpaced', 3000, null, 1000), () => redisGroupSetup({ redisServer: 'redis-server', cleanup }));
    expect(r.check).toMatchObject({ records: 3000, missing: 0, duplicates: 0, ok: true });
    expect(r.latency.samples).toBe(3000);
  }, 120_000);
});
