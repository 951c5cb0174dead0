/**
 * Hostile and malformed input: each bad client gets an error code or its own connection closed;
 * the broker keeps serving everyone else and nothing stored is harmed.
 */
import fc from 'fast-check';
import { Kafka, logLevel, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBrokerProcess, type BrokerProcess } from '../../../lib/src/testing/processes.ts';
import { fetchAll } from '../support/fetch-all.ts';
import { RawConnection, encodeRequest, kafkajsApi, makeBatch, produceRequest } from '../support/raw-client.ts';

let broker: BrokerProcess;
let producer: Producer;
const stored: string[] = [];

beforeAll(async () => {
  broker = await startBrokerProcess({ args: ['--max-request-bytes', String(1024 * 1024)] });
  const kafka = new Kafka({ brokers: [broker.bootstrap], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'safe', numPartitions: 1 }] });
  await admin.disconnect();
  producer = kafka.producer();
  await producer.connect();
  for (let i = 0; i < 10; i++) stored.push(`kept-${i}`);
  await producer.send({ topic: 'safe', messages: stored.map((value) => ({ value })) });
});
afterAll(async () => {
  await producer?.disconnect();
  await broker?.kill('SIGTERM');
});

/** The broker is alive, serves others, and the stored records are intact. */
async function assertHealthy(): Promise<void> {
  expect(broker.proc.exitCode).toBeNull();
  const [res] = await producer.send({ topic: 'safe', messages: [{ value: 'probe' }] });
  expect(res.errorCode).toBe(0);
  stored.push('probe');
  expect((await fetchAll(broker.port, 'safe', 0)).map((r) => r.value?.toString())).toEqual(stored);
}

async function expectClosed(bytes: Buffer): Promise<void> {
  const c = await RawConnection.connect(broker.port);
  c.send(bytes);
  expect(await c.next(5000)).toBeNull();
  await c.closedPromise;
}

function frame(body: Buffer): Buffer {
  const size = Buffer.alloc(4);
  size.writeInt32BE(body.length);
  return Buffer.concat([size, body]);
}

describe('bad input', () => {
  it('closes the connection on garbage, negative and oversized frame sizes', async () => {
    await expectClosed(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await expectClosed(Buffer.from([0xff, 0xff, 0xff, 0xfe, 1, 2, 3]));
    await expectClosed(Buffer.from([0x7f, 0xff, 0xff, 0xff]));
    await assertHealthy();
  });

  it('closes the connection on an unknown API key, an unsupported version and a truncated body', async () => {
    const header = (key: number, version: number) => {
      const b = Buffer.alloc(10);
      b.writeInt16BE(key, 0);
      b.writeInt16BE(version, 2);
      b.writeInt32BE(1, 4);
      b.writeInt16BE(-1, 8);
      return b;
    };
    await expectClosed(frame(header(999, 0)));
    await expectClosed(frame(header(3, 42)));
    await expectClosed(frame(Buffer.concat([header(3, 4), Buffer.from([0, 0, 0, 5, 0])])));
    await assertHealthy();
  });

  it('answers an unsupported ApiVersions version in the v0 layout with UNSUPPORTED_VERSION', async () => {
    const b = Buffer.alloc(10);
    b.writeInt16BE(18, 0);
    b.writeInt16BE(9, 2);
    b.writeInt32BE(77, 4);
    b.writeInt16BE(-1, 8);
    const c = await RawConnection.connect(broker.port);
    c.send(frame(b));
    const res = await c.next();
    c.close();
    expect(res).not.toBeNull();
    expect(res!.readInt32BE(0)).toBe(77);
    expect(res!.readInt16BE(4)).toBe(35);
    expect(res!.readInt32BE(6)).toBe(1); // one entry: ApiVersions itself
    expect([res!.readInt16BE(10), res!.readInt16BE(12), res!.readInt16BE(14)]).toEqual([18, 0, 3]);
  });

  it('refuses a corrupt batch with CORRUPT_MESSAGE and stores nothing of it', async () => {
    const batch = await makeBatch([{ value: 'will-be-corrupted' }]);
    batch[batch.length - 3] ^= 0xff;
    const c = await RawConnection.connect(broker.port);
    c.send(produceRequest(5, 7, -1, 'safe', [{ partition: 0, records: batch }]));
    const res = await c.next();
    c.close();
    // Produce v7 response: [topic [partition error_code base_offset log_append_time log_start_offset]] throttle
    const nameLen = res!.readInt16BE(8);
    const at = 10 + nameLen + 4;
    expect(res!.readInt32BE(at)).toBe(0);
    expect(res!.readInt16BE(at + 4)).toBe(2);
    await assertHealthy();
  });

  it('refuses two batches in one partition entry, a control batch, unknown partitions and bad acks', async () => {
    const one = await makeBatch([{ value: 'a' }]);
    const two = Buffer.concat([one, await makeBatch([{ value: 'b' }])]);
    const control = Buffer.from(one);
    control.writeInt16BE(control.readInt16BE(21) | 0x20, 21);
    const { crc32c } = await import('@node-rs/crc32');
    control.writeUInt32BE(crc32c(control.subarray(21)), 17);
    const c = await RawConnection.connect(broker.port);
    const errorOf = async (corr: number, acks: number, partition: number, records: Buffer) => {
      c.send(produceRequest(corr, 7, acks, 'safe', [{ partition, records }]));
      const res = (await c.next())!;
      return res.readInt16BE(10 + res.readInt16BE(8) + 8);
    };
    expect(await errorOf(1, -1, 0, two)).toBe(87);
    expect(await errorOf(2, -1, 0, control)).toBe(87);
    expect(await errorOf(3, -1, 9, one)).toBe(3);
    expect(await errorOf(4, 2, 0, one)).toBe(21);
    c.close();
    await assertHealthy();
  });

  it('survives random and mutated-valid frames (fuzz)', async () => {
    const valid = [
      await encodeRequest(kafkajsApi('metadata', 6, { topics: ['safe'], allowAutoTopicCreation: false }), 1),
      await encodeRequest(kafkajsApi('apiVersions', 2, {}), 2),
      await encodeRequest(kafkajsApi('listOffsets', 3, { replicaId: -1, isolationLevel: 1, topics: [{ topic: 'safe', partitions: [{ partition: 0, timestamp: -1 }] }] }), 3),
      await encodeRequest(
        kafkajsApi('fetch', 11, {
          replicaId: -1,
          maxWaitTime: 10,
          minBytes: 1,
          maxBytes: 1 << 20,
          isolationLevel: 1,
          topics: [{ topic: 'safe', partitions: [{ partition: 0, fetchOffset: '0', maxBytes: 1 << 16 }] }],
        }),
        4,
      ),
      produceRequest(5, 7, -1, 'fuzz', [{ partition: 0, records: await makeBatch([{ value: 'fuzz' }]) }]),
    ];
    const mutated = fc
      .record({ which: fc.nat(valid.length - 1), flips: fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 8 }), cut: fc.option(fc.nat()) })
      .map(({ which, flips, cut }) => {
        const b = Buffer.from(valid[which]);
        // Keep the size prefix mostly consistent so the mutation reaches the body decoders.
        for (const [pos, val] of flips) b[4 + (pos % (b.length - 4))] = val;
        if (cut !== null) {
          const body = b.subarray(4, 4 + (cut % (b.length - 4)));
          return frame(body);
        }
        return b;
      });
    const random = fc.uint8Array({ minLength: 0, maxLength: 300 }).map((a) => Buffer.from(a));
    await fc.assert(
      fc.asyncProperty(fc.oneof(mutated, random), async (bytes) => {
        const c = await RawConnection.connect(broker.port);
        c.send(bytes);
        // Whatever happens to this client, the broker must not crash.
        await Promise.race([c.next(100).catch(() => null), c.closedPromise]);
        c.close();
        expect(broker.proc.exitCode).toBeNull();
      }),
      { numRuns: 300 },
    );
    await assertHealthy();
  }, 60_000);

  it('keeps serving other clients during a connection flood and a slowloris client', async () => {
    const slow = await RawConnection.connect(broker.port);
    slow.send(Buffer.from([0, 0, 0, 100, 0])); // a frame that never completes
    const flood = await Promise.all(Array.from({ length: 200 }, () => RawConnection.connect(broker.port)));
    await assertHealthy();
    for (const c of flood) c.close();
    slow.close();
  });
});
