/**
 * Crash safety: a broker child process under concurrent acks=-1 produce is SIGKILLed at random
 * moments and restarted on the same data dir; every acknowledged record must be read back at
 * the offset it was acknowledged with, and the log must keep serving and appending.
 */
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { startBrokerProcess, tempDir, type BrokerProcess } from '../../../lib/src/testing/processes.ts';
import { fetchAll } from '../support/fetch-all.ts';

const PARTITIONS = 6;
const PRODUCERS = 4;
let broker: BrokerProcess | undefined;

afterAll(async () => {
  await broker?.kill('SIGKILL');
});

/** Produces until stopped; records every acknowledged (partition, offset) -> value. */
async function produceUntilStopped(bootstrap: string, cycle: number, acked: Map<string, string>, stop: { now: boolean }): Promise<void> {
  const kafka = new Kafka({ clientId: `crash-${cycle}`, brokers: [bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 0 } });
  const producer = kafka.producer({ allowAutoTopicCreation: false, retry: { retries: 0 } });
  try {
    await producer.connect();
  } catch {
    return;
  }
  const loops = Array.from({ length: PRODUCERS }, async (_, id) => {
    for (let seq = 0; !stop.now; seq++) {
      const partition = (id + seq) % PARTITIONS;
      const values = Array.from({ length: 25 }, (_, i) => `c${cycle}-p${id}-s${seq}-r${i}`);
      try {
        const [res] = await producer.send({ topic: 'crash', acks: -1, messages: values.map((value) => ({ value, partition })) });
        const base = Number(res.baseOffset);
        values.forEach((v, i) => acked.set(`${partition}:${base + i}`, v));
      } catch {
        return; // the broker died under us: this batch was never acknowledged
      }
    }
  });
  await Promise.all(loops);
  await producer.disconnect().catch(() => undefined);
}

describe('crash safety', () => {
  it('keeps every acknowledged record across repeated SIGKILLs', async () => {
    const dataDir = tempDir('crash');
    const acked = new Map<string, string>();
    broker = await startBrokerProcess({ dataDir });
    const admin = new Kafka({ brokers: [broker.bootstrap], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'crash', numPartitions: PARTITIONS }] });
    await admin.disconnect();

    for (let cycle = 0; cycle < 4; cycle++) {
      const stop = { now: false };
      const producing = produceUntilStopped(broker.bootstrap, cycle, acked, stop);
      await new Promise((r) => setTimeout(r, 400 + Math.random() * 1200));
      await broker.kill('SIGKILL');
      stop.now = true;
      await producing;
      broker = await startBrokerProcess({ dataDir });
    }

    expect(acked.size).toBeGreaterThan(500);
    let total = 0;
    for (let p = 0; p < PARTITIONS; p++) {
      const records = await fetchAll(broker.port, 'crash', p);
      // Offsets are contiguous from 0: nothing torn or corrupt is served.
      expect(records.map((r) => Number(r.offset))).toEqual(records.map((_, i) => i));
      const byOffset = new Map(records.map((r) => [Number(r.offset), r.value?.toString()]));
      for (const [key, value] of acked) {
        const [part, offset] = key.split(':').map(Number);
        if (part === p) {
          expect(byOffset.get(offset), `acknowledged record ${key}`).toBe(value);
          total++;
        }
      }
    }
    expect(total).toBe(acked.size);
  }, 120_000);
});
