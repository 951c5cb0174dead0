/**
 * Pooled buffers (storage/buffer-pool.ts) must never be reused while something still reads them:
 * - fetch read buffers only once the response holding them is written to the socket. Here a
 *   client pipelines fetches of 4 MiB and does not read the answers, so most of them wait in the
 *   broker's socket queue, while kcat reads another topic with the same 4 MiB fetches and so
 *   churns buffers of the same size class. Every held-back answer must still carry exactly its
 *   own records when the client finally reads it;
 * - produce frames only once their batches are in the log: several producers at once, each
 *   record read back exactly as sent.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, startBrokerProcess, waitFor, type BrokerProcess } from '../../../lib/src/testing/processes.ts';
import { brokerMetric, POOL_REUSED } from '../support/metrics.ts';
import { encodeRequest, kafkajsApi } from '../support/raw-client.ts';

let broker: BrokerProcess;
beforeAll(async () => {
  broker = await startBrokerProcess();
});
afterAll(async () => {
  await broker?.kill('SIGTERM');
});

const PARTITION_MAX_BYTES = 4 * 1024 * 1024;
const FETCHES = 12;

const line = (topic: string, i: number) => `${topic}-${String(i).padStart(7, '0')}-${'abcdefghij'.repeat(28)}`;

async function produce(topic: string, count: number): Promise<void> {
  const text = `${Array.from({ length: count }, (_, i) => line(topic, i)).join('\n')}\n`;
  const r = await run('kcat', ['-b', broker.bootstrap, '-P', '-t', topic, '-p', '0', '-X', 'acks=all', '-X', 'batch.num.messages=2000'], { input: text, timeoutMs: 60_000 });
  expect(r.code).toBe(0);
}

const fetchRequests = () => brokerMetric(broker.metricsPort, /spillway_broker_requests_total\{api="Fetch",outcome="ok"\} (\d+)/);

describe('pooled buffers', () => {
  it('keep produce frames intact until their batches are written, with several producers at once', async () => {
    const topics = ['pool-produce-a', 'pool-produce-b', 'pool-produce-c', 'pool-produce-d'];
    const reused = () => brokerMetric(broker.metricsPort, POOL_REUSED);
    const before = await reused();
    await Promise.all(topics.map((t) => produce(t, 30_000)));
    expect(await reused()).toBeGreaterThan(before); // frames were assembled in reused buffers
    const reads = await Promise.all(topics.map((t) => run('kcat', ['-b', broker.bootstrap, '-C', '-t', t, '-p', '0', '-o', 'beginning', '-e', '-q'], { timeoutMs: 60_000 })));
    reads.forEach((r, i) => {
      expect(r.code).toBe(0);
      const got = r.stdout.toString().split('\n').filter((l) => l !== '');
      expect(got.length).toBe(30_000);
      got.forEach((l, k) => {
        if (l !== line(topics[i], k)) expect.fail(`${topics[i]} offset ${k}: ${l.slice(0, 40)}...`);
      });
    });
  });


  it('are not reused while a response holding them waits for a slow reader', async () => {
    await produce('held', 60_000); // ~18 MB in one partition
    await produce('churn', 60_000);

    const socket = net.connect(broker.port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.pause(); // read nothing until the churn is over
    const before = await fetchRequests();
    // Fetches at different offsets, so each answer holds other bytes.
    const offsets = Array.from({ length: FETCHES }, (_, i) => i * 3000);
    for (let i = 0; i < FETCHES; i++) {
      const api = kafkajsApi('fetch', 11, {
        replicaId: -1,
        maxWaitTime: 100,
        minBytes: 1,
        maxBytes: PARTITION_MAX_BYTES,
        isolationLevel: 1,
        topics: [{ topic: 'held', partitions: [{ partition: 0, fetchOffset: String(offsets[i]), maxBytes: PARTITION_MAX_BYTES }] }],
      });
      socket.write(await encodeRequest(api, i + 1));
    }
    await waitFor(async () => (await fetchRequests()) >= before + FETCHES, { what: 'the broker to answer every held fetch' });
    expect(socket.readableLength).toBeLessThan(PARTITION_MAX_BYTES * FETCHES); // answers are still held back

    for (let round = 0; round < 3; round++) {
      const r = await run('kcat', ['-b', broker.bootstrap, '-C', '-t', 'churn', '-p', '0', '-o', 'beginning', '-e', '-q', '-X', `max.partition.fetch.bytes=${PARTITION_MAX_BYTES}`, '-X', 'fetch.wait.max.ms=20'], { timeoutMs: 60_000 });
      expect(r.code).toBe(0);
      expect(r.stdout.toString().split('\n').filter((l) => l !== '').length).toBe(60_000);
    }

    socket.resume();
    const frames: Buffer[] = [];
    await waitFor(
      () => {
        const all = Buffer.concat(chunks);
        frames.length = 0;
        let pos = 0;
        while (pos + 4 <= all.length && pos + 4 + all.readInt32BE(pos) <= all.length) {
          frames.push(all.subarray(pos + 4, pos + 4 + all.readInt32BE(pos)));
          pos += 4 + all.readInt32BE(pos);
        }
        return frames.length === FETCHES;
      },
      { timeoutMs: 30_000, what: 'every held answer' },
    );
    socket.destroy();

    for (let i = 0; i < FETCHES; i++) {
      expect(frames[i].readInt32BE(0)).toBe(i + 1);
      const api = kafkajsApi('fetch', 11, { topics: [] });
      const res = (await api.response.decode(frames[i].subarray(4))) as {
        responses: { partitions: { errorCode: number; messages: { offset: string; value: Buffer }[] }[] }[];
      };
      const p = res.responses[0].partitions[0];
      expect(p.errorCode).toBe(0);
      const messages = p.messages.filter((m) => Number(m.offset) >= offsets[i]);
      // 4 MiB holds about 13,700 of these records, but an answer carries whole batches (kcat's, of
      // up to 2,000 records): the one holding the fetch offset starts before it, and the batch
      // that would cross 4 MiB stays out. So at least about 9,700 (9,998 seen; 10,000 was too tight).
      expect(messages.length).toBeGreaterThan(8_000);
      messages.forEach((m, k) => {
        const offset = offsets[i] + k;
        expect(Number(m.offset)).toBe(offset);
        expect(m.value.toString()).toBe(line('held', offset));
      });
    }
  });
});
