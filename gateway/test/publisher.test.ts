/**
 * The publisher: its partitioner must agree with kafkajs's DefaultPartitioner (so a key lands
 * where any Kafka client would put it), every answered placement must hold that record, and a
 * lost acknowledgement must never make a later, different record be answered with the lost
 * batch's offset.
 */
import { randomBytes } from 'node:crypto';
import { Partitioners } from 'kafkajs';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { startDropProxy, type DropProxy } from '../../buffer-broker/test/support/drop-proxy.ts';
import { freePort, startBrokerProcess, type BrokerProcess } from '../../lib/src/testing/processes.ts';
import { KafkajsPublisher, partitionForKey, type Placement } from '../src/publisher.ts';
import { readOrders } from './support/log.ts';

describe('partitionForKey', () => {
  it("matches kafkajs's DefaultPartitioner for any key and partition count", () => {
    const partitioner = Partitioners.DefaultPartitioner();
    const keys = ['', 'a', 'SKU-1', 'grüße', '✓✓✓', 'x'.repeat(1000), ...Array.from({ length: 2000 }, () => randomBytes(1 + (randomBytes(1)[0] % 40)).toString('base64'))];
    for (const n of [1, 2, 3, 7, 12, 64, 1024]) {
      const partitionMetadata = Array.from({ length: n }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] }));
      for (const key of keys) {
        const want = partitioner({ topic: 't', partitionMetadata, message: { key, value: null } });
        expect(partitionForKey(key, n), `${JSON.stringify(key)} over ${n}`).toBe(want);
      }
    }
  });
});

let broker: BrokerProcess | undefined;
let proxy: DropProxy | undefined;
const publishers: KafkajsPublisher[] = [];
afterAll(async () => {
  await Promise.all(publishers.map((p) => p.close()));
  await proxy?.close();
  await broker?.kill('SIGKILL');
});

function publisher(port: number): KafkajsPublisher {
  const p = new KafkajsPublisher({ brokers: [`127.0.0.1:${port}`], clientId: 'publisher-test', lingerMs: 0, maxBatch: 100, requestTimeoutMs: 2000, log: pino({ enabled: false }) });
  publishers.push(p);
  return p;
}

async function valueAt(topic: string, at: Placement): Promise<unknown> {
  const records = await readOrders((broker as BrokerProcess).port, topic, [at.partition]);
  return records.find((r) => r.offset === at.offset)?.order;
}

describe('KafkajsPublisher against the broker', () => {
  it('answers each coalesced record with the partition and offset that hold it', async () => {
    // The broker advertises the proxy's port, so every kafkajs connection goes through it.
    const proxyPort = await freePort();
    broker = await startBrokerProcess({ args: ['--advertised-port', String(proxyPort)] });
    proxy = await startDropProxy(broker.port, proxyPort);
    const p = publisher(proxyPort);
    await p.connect();
    await p.ensureTopic('pub', 4);
    expect(p.ready()).toBe(true);
    const records = Array.from({ length: 60 }, (_, i) => ({ topic: 'pub', key: i % 3 === 0 ? null : `k${i % 7}`, value: JSON.stringify({ i }) }));
    const placements = await Promise.all(records.map((r) => p.publish(r)));
    for (const [i, at] of placements.entries()) {
      if (records[i].key !== null) expect(at.partition).toBe(partitionForKey(records[i].key as string, 4));
      expect(await valueAt('pub', at), `record ${i}`).toEqual({ i });
    }
    expect(new Set(placements.map((at) => `${at.partition}:${at.offset}`)).size).toBe(60);
  });

  it('after a lost acknowledgement, answers the next record with its own offset, not the lost batch’s', async () => {
    const p = publishers[0];
    const at0 = await p.publish({ topic: 'pub', key: 'same-key', value: JSON.stringify({ n: 'before' }) });
    // Every answer to a produce is lost, retries included: the append lands, the publish fails.
    (proxy as DropProxy).dropNextProduceResponses(100);
    await expect(p.publish({ topic: 'pub', key: 'same-key', value: JSON.stringify({ n: 'lost-ack' }) })).rejects.toMatchObject({ code: 'BUFFER_UNAVAILABLE' });
    (proxy as DropProxy).dropNextProduceResponses(0);
    expect((proxy as DropProxy).dropped).toBeGreaterThan(0);
    // The same partition, the same record count: with a reused sequence number the broker would
    // take this for a retry of the lost batch and answer with its offset.
    const at2 = await p.publish({ topic: 'pub', key: 'same-key', value: JSON.stringify({ n: 'after' }) });
    expect(at2.partition).toBe(at0.partition);
    expect(await valueAt('pub', at2)).toEqual({ n: 'after' });
    const inLog = (await readOrders((broker as BrokerProcess).port, 'pub', [at0.partition])).filter((r) => r.offset >= at0.offset).map((r) => r.order);
    expect(inLog).toEqual([{ n: 'before' }, { n: 'lost-ack' }, { n: 'after' }]);
    // And it keeps working.
    const at3 = await p.publish({ topic: 'pub', key: 'same-key', value: JSON.stringify({ n: 'later' }) });
    expect(at3.offset).toBe(at2.offset + 1);
  });
});
