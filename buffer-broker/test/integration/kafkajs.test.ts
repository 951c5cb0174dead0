/** kafkajs 2.2.4 against a real broker process: producer, admin, and fetches decoded by kafkajs. */
import { CompressionTypes, Kafka, logLevel, type Admin, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBrokerProcess, waitFor, type BrokerProcess } from '../../../lib/src/testing/processes.ts';
import { RawConnection, kafkajsApi } from '../support/raw-client.ts';
import { fetchAll as fetchAllFrom, type FetchResponse } from '../support/fetch-all.ts';

const fetchAll = (topic: string, partition: number) => fetchAllFrom(broker.port, topic, partition);


let broker: BrokerProcess;
let kafka: Kafka;
let admin: Admin;
let producer: Producer;

beforeAll(async () => {
  broker = await startBrokerProcess();
  kafka = new Kafka({ clientId: 'kafkajs-test', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING });
  admin = kafka.admin();
  await admin.connect();
  producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
});
afterAll(async () => {
  await producer?.disconnect();
  await admin?.disconnect();
  await broker?.kill('SIGTERM');
});

describe('kafkajs', () => {
  it('creates and deletes topics through the admin client', async () => {
    expect(await admin.createTopics({ topics: [{ topic: 'adm-a', numPartitions: 5 }, { topic: 'adm-b' }] })).toBe(true);
    expect(await admin.createTopics({ topics: [{ topic: 'adm-a', numPartitions: 5 }] })).toBe(false);
    const md = await admin.fetchTopicMetadata({ topics: ['adm-a', 'adm-b'] });
    expect(md.topics.map((t) => [t.name, t.partitions.length]).sort()).toEqual([
      ['adm-a', 5],
      ['adm-b', 12],
    ]);
    await expect(admin.createTopics({ topics: [{ topic: 'bad/name' }] })).rejects.toThrow();
    await admin.deleteTopics({ topics: ['adm-b'] });
    expect(await admin.listTopics()).not.toContain('adm-b');
  });

  for (const acks of [-1, 1] as const) {
    it(`produces with acks=${acks} to many partitions and reads back byte for byte`, async () => {
      const topic = `kjs-acks${acks}`;
      await admin.createTopics({ topics: [{ topic, numPartitions: 12 }] });
      const messages = Array.from({ length: 600 }, (_, i) => ({
        key: `sku-${i % 37}`,
        value: Buffer.from(`order-${i}-${'é'.repeat(i % 5)}`),
        headers: { h: `x${i}` },
        partition: i % 12,
      }));
      const res = await producer.send({ topic, acks, messages });
      expect(res.every((r) => r.errorCode === 0)).toBe(true);
      for (let p = 0; p < 12; p++) {
        const expected = messages.filter((m) => m.partition === p);
        const got = await fetchAll(topic, p);
        expect(got.map((r) => Number(r.offset))).toEqual(expected.map((_, i) => i));
        expect(got.map((r) => r.key?.toString())).toEqual(expected.map((m) => m.key));
        expect(got.map((r) => r.value?.toString('hex'))).toEqual(expected.map((m) => m.value.toString('hex')));
        expect(got.map((r) => r.headers.h.toString())).toEqual(expected.map((m) => m.headers.h));
      }
      const offsets = await admin.fetchTopicOffsets(topic);
      expect(offsets.reduce((n, o) => n + Number(o.high), 0)).toBe(600);
    });
  }

  it('produces with acks=0 (no answer expected) and the records still land', async () => {
    const topic = 'kjs-acks0';
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
    for (let i = 0; i < 20; i++) await producer.send({ topic, acks: 0, messages: [{ value: `fire-and-forget-${i}` }] });
    await waitFor(async () => Number((await admin.fetchTopicOffsets(topic))[0].high) === 20, { what: 'acks=0 records' });
    expect((await fetchAll(topic, 0)).map((r) => r.value?.toString())).toEqual([...Array(20).keys()].map((i) => `fire-and-forget-${i}`));
  });

  it('stores gzip batches compressed and kafkajs decodes them', async () => {
    const topic = 'kjs-gzip';
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] });
    const messages = Array.from({ length: 300 }, (_, i) => ({ value: `gz-${i}-${'z'.repeat(100)}`, partition: i % 2 }));
    await producer.send({ topic, compression: CompressionTypes.GZIP, messages });
    const got = [...(await fetchAll(topic, 0)), ...(await fetchAll(topic, 1))];
    expect(got.map((r) => r.value?.toString()).sort()).toEqual(messages.map((m) => m.value).sort());
  });

  it('answers ListOffsets: earliest, latest and by timestamp', async () => {
    const topic = 'kjs-times';
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
    const t0 = Date.now() - 100_000;
    await producer.send({ topic, messages: [0, 1, 2, 3].map((i) => ({ value: `t${i}`, timestamp: String(t0 + i * 1000) })) });
    await producer.send({ topic, messages: [4, 5].map((i) => ({ value: `t${i}`, timestamp: String(t0 + i * 1000) })) });
    expect(await admin.fetchTopicOffsets(topic)).toEqual([{ partition: 0, offset: '6', high: '6', low: '0' }]);
    expect(await admin.fetchTopicOffsetsByTimestamp(topic, t0 + 2500)).toEqual([{ partition: 0, offset: '3' }]);
    expect(await admin.fetchTopicOffsetsByTimestamp(topic, t0 + 4000)).toEqual([{ partition: 0, offset: '4' }]);
    // Later than every record: kafkajs falls back to the high watermark.
    expect(await admin.fetchTopicOffsetsByTimestamp(topic, t0 + 999_000)).toEqual([{ partition: 0, offset: '6' }]);
  });

  it('fails a produce to an unknown topic when auto-creation is off, and auto-creates through metadata otherwise', async () => {
    const strict = kafka.producer({ allowAutoTopicCreation: false, retry: { retries: 1, initialRetryTime: 50 } });
    await strict.connect();
    await expect(strict.send({ topic: 'never-created', messages: [{ value: 'x' }] })).rejects.toThrow(/does not host this topic-partition|UNKNOWN_TOPIC/i);
    await strict.disconnect();
    const auto = kafka.producer();
    await auto.connect();
    try {
      const res = await auto.send({ topic: 'auto-created', messages: [{ key: 'k', value: 'v' }] });
      expect(res[0].errorCode).toBe(0);
      expect((await admin.fetchTopicMetadata({ topics: ['auto-created'] })).topics[0].partitions).toHaveLength(12);
    } finally {
      await auto.disconnect();
    }
  });

  it('holds a long-poll fetch until a new append arrives', async () => {
    const topic = 'kjs-longpoll';
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
    const conn = await RawConnection.connect(broker.port);
    try {
      const api = kafkajsApi('fetch', 11, {
        replicaId: -1,
        maxWaitTime: 25_000,
        minBytes: 1,
        maxBytes: 1 << 20,
        isolationLevel: 1,
        topics: [{ topic, partitions: [{ partition: 0, fetchOffset: '0', maxBytes: 1 << 20 }] }],
      });
      const pending = conn.call<FetchResponse>(api, 7);
      await new Promise((r) => setTimeout(r, 300));
      await producer.send({ topic, messages: [{ value: 'wake-up' }] });
      // Answered long before max_wait (the test's own timeout is shorter than 25 s).
      const res = await pending;
      expect(res.responses[0].partitions[0].messages.map((m) => m.value?.toString())).toEqual(['wake-up']);
    } finally {
      conn.close();
    }
  }, 15_000);
});
