/**
 * The end-to-end runner of bench:broker (bench/lib/e2e.ts) at a small scale, against a real broker
 * process with the bench's wire producer or kcat and a real kafkajs group, and against a real
 * redis-server: the warm-up goes
 * through the same producer, topic and members before the clock starts and is left out of every
 * figure, and each measured record is consumed exactly once, unpaced and paced.
 */
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBrokerProcess, type BrokerProcess } from '../../lib/src/testing/processes.ts';
import { runEndToEnd, type E2eOptions } from '../lib/e2e.ts';
import { redisGroupSetup, spillwaySetup, type SpillwayProducer } from '../lib/e2e-systems.ts';
import { KafkaWireProducer } from '../lib/kafka-wire-producer.ts';
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
  const spillway = (topic: string, producer: SpillwayProducer = 'kcat') => () =>
    spillwaySetup({ producer, kcat: 'kcat', bootstrap: broker.bootstrap, metricsPort: broker.metricsPort, brokerPid: broker.proc.pid ?? 0, topic, timeoutMs: 90_000, cleanup, commit: { mode: 'async', intervalMs: 0 }, partitionsConcurrently: 1 });

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

  it('Spillway with the wire producer: kafkajs decodes its batches; every record once, CreateTime from the stamp, warm-up first', async () => {
    const r = await runEndToEnd(options('kafka wire unpaced', 3000, null, 1000), spillway('e2e-wire', 'wire'));
    expect(r.check).toMatchObject({ records: 3000, missing: 0, duplicates: 0, foreign: 0, wrongSize: 0, ok: true });
    expect(r.latency.samples).toBe(3000);
    expect(await logEnd('e2e-wire')).toBe(4000);
    // The batch's CreateTime is the stamp's millisecond: stamp -> CreateTime within [-1, 0] ms.
    expect(r.latencySplit?.toClient.samples).toBeGreaterThan(0);
    expect(r.latencySplit?.toClient.maxMs).toBeLessThanOrEqual(1);
    // One batch per send, the partitions in turn: 4,000 records in chunks of 1,000 reach 4 partitions.
    const admin = new Kafka({ clientId: 'e2e-test', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchTopicOffsets('e2e-wire');
      expect(offsets.filter((o) => Number(o.high) > 0).length).toBeGreaterThanOrEqual(4);
    } finally {
      await admin.disconnect();
    }
  }, 120_000);

  it('Spillway with the wire producer, paced: sent at the given rate', async () => {
    const r = await runEndToEnd(options('kafka wire paced', 2000, 4000, 1000), spillway('e2e-wire-paced', 'wire'));
    expect(r.check.ok).toBe(true);
    expect(r.produce.ms).toBeGreaterThanOrEqual(490);
    expect(await logEnd('e2e-wire-paced')).toBe(3000);
  }, 120_000);

  it('the wire producer fails on a Kafka error code instead of carrying on (unknown topic)', async () => {
    const [host, port] = broker.bootstrap.split(':');
    const wire = await KafkaWireProducer.connect({ host: host ?? '127.0.0.1', port: Number(port), topic: 'e2e-no-such-topic', partitions: 12 });
    try {
      await wire.send(0, 10, Date.now() * 1000);
      await expect(wire.finish()).rejects.toThrow(/Kafka error code 3\b/);
      await expect(wire.send(10, 10, Date.now() * 1000)).rejects.toThrow(/Kafka error code 3\b/);
    } finally {
      wire.close();
    }
  }, 30_000);

  it('Redis Streams: the same runner, warm-up in the same stream, each measured record once', async () => {
    const r = await runEndToEnd(options('redis unpaced', 3000, null, 1000), () => redisGroupSetup({ redisServer: 'redis-server', cleanup }));
    expect(r.check).toMatchObject({ records: 3000, missing: 0, duplicates: 0, ok: true });
    expect(r.latency.samples).toBe(3000);
  }, 120_000);
});
