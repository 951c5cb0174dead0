/**
 * Hostile clients (issue 8): random and mutated-valid frames, oversized and huge-but-allowed
 * length prefixes, slowloris connections and a connection flood beyond --max-connections. During
 * every phase a well-behaved kafkajs producer and group consumer must keep making progress; at
 * the end every acknowledged record was consumed, the broker never exited, and its peak RSS stayed
 * bounded. Progress is checked with waitFor (no timings).
 */
import fc from 'fast-check';
import fs from 'node:fs';
import { Kafka, logLevel, type Consumer, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBrokerProcess, waitFor, type BrokerProcess } from '../../../lib/src/testing/processes.ts';
import { fetchAll } from '../support/fetch-all.ts';
import { RawConnection, encodeRequest, kafkajsApi, makeBatch, produceRequest } from '../support/raw-client.ts';

const MAX_CONNECTIONS = 60;
const MAX_REQUEST = 4 * 1024 * 1024;
const BUDGET = 16 * 1024 * 1024;

let broker: BrokerProcess;
let producer: Producer;
let consumer: Consumer;
let acked = 0;
let stopProducing = false;
let producing: Promise<void>;
const consumed = new Set<string>();

beforeAll(async () => {
  broker = await startBrokerProcess({
    args: [
      '--max-connections', String(MAX_CONNECTIONS),
      '--max-request-bytes', String(MAX_REQUEST),
      '--max-buffered-request-bytes', String(BUDGET),
      '--request-read-timeout-ms', '1500',
    ],
  });
  const kafka = new Kafka({ clientId: 'well-behaved', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 20, initialRetryTime: 100, maxRetryTime: 1000 } });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'steady', numPartitions: 2 }] });
  await admin.disconnect();
  producer = kafka.producer();
  await producer.connect();
  consumer = kafka.consumer({ groupId: 'steady-group', sessionTimeout: 30_000, heartbeatInterval: 500, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic: 'steady', fromBeginning: true });
  await consumer.run({ eachMessage: async ({ message }) => void consumed.add(message.value?.toString() ?? '') });
  producing = (async () => {
    for (let i = 0; !stopProducing; i++) {
      try {
        await producer.send({ topic: 'steady', acks: -1, messages: [{ key: `k${i % 7}`, value: `steady-${i}` }] });
        acked = i + 1;
      } catch {
        i--; // retry the same value: every acknowledged value must be consumed
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  await waitFor(() => consumed.size > 0, { timeoutMs: 30_000, what: 'the steady client to run' });
}, 60_000);

afterAll(async () => {
  stopProducing = true;
  await producing;
  await consumer?.disconnect();
  await producer?.disconnect();
  await broker?.kill('SIGTERM');
});

/** Waits until the steady client has both produced and consumed something new since `mark`. */
async function steadyProgresses(mark: { acked: number; consumed: number }): Promise<void> {
  await waitFor(() => acked > mark.acked + 2 && consumed.size > mark.consumed + 2, { timeoutMs: 60_000, what: 'the steady client to make progress' });
}
const mark = () => ({ acked, consumed: consumed.size });

async function metric(name: string, labels = ''): Promise<number | null> {
  const text = await (await fetch(`http://127.0.0.1:${broker.metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels === '' ? ' ' : `{${labels}} `}`));
  return line === undefined ? null : Number(line.split(' ').pop());
}

function kib(status: string, field: string): number {
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
}

describe('hostile clients', () => {
  it('random and mutated-valid frames: each bad client is closed or answered; the steady client keeps going', async () => {
    const m = mark();
    const valid = [
      await encodeRequest(kafkajsApi('metadata', 6, { topics: ['steady'], allowAutoTopicCreation: false }), 1),
      await encodeRequest(kafkajsApi('apiVersions', 2, {}), 2),
      await encodeRequest(kafkajsApi('findCoordinator', 2, { groupId: 'steady-group', coordinatorType: 0 }), 3),
      await encodeRequest(kafkajsApi('heartbeat', 3, { groupId: 'steady-group', groupGenerationId: 1, memberId: 'x', groupInstanceId: null }), 4),
      produceRequest(5, 7, -1, 'fuzz-hostile', [{ partition: 0, records: await makeBatch([{ value: 'fuzz' }]) }]),
    ];
    const mutated = fc
      .record({ which: fc.nat(valid.length - 1), flips: fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 6 }) })
      .map(({ which, flips }) => {
        const b = Buffer.from(valid[which]);
        for (const [pos, val] of flips) b[4 + (pos % (b.length - 4))] = val;
        return b;
      });
    const random = fc.uint8Array({ minLength: 0, maxLength: 200 }).map((a) => Buffer.from(a));
    await fc.assert(
      fc.asyncProperty(fc.oneof(mutated, random), async (bytes) => {
        const c = await RawConnection.connect(broker.port);
        c.send(bytes);
        await Promise.race([c.next(50).catch(() => null), c.closedPromise]);
        c.close();
      }),
      { numRuns: 150 },
    );
    expect(broker.proc.exitCode).toBeNull();
    await steadyProgresses(m);
  }, 120_000);

  it('oversized length prefixes close at once; big-but-allowed half-sent frames share a bounded memory budget and time out', async () => {
    const m = mark();
    for (const size of [MAX_REQUEST + 1, 0x7fffffff, -1]) {
      const c = await RawConnection.connect(broker.port);
      const head = Buffer.alloc(4);
      head.writeInt32BE(size);
      c.send(head);
      expect(await c.next(10_000)).toBeNull();
    }
    // 24 clients each declare a 4 MiB frame and send 1 MiB of it: 96 MiB declared against a 16 MiB budget.
    const clients = await Promise.all(Array.from({ length: 24 }, () => RawConnection.connect(broker.port)));
    for (const c of clients) {
      const head = Buffer.alloc(4);
      head.writeInt32BE(MAX_REQUEST - 100);
      c.send(Buffer.concat([head, Buffer.alloc(1024 * 1024, 7)]));
    }
    let peak = 0;
    await waitFor(
      async () => {
        const used = await metric('spillway_broker_buffered_request_bytes');
        if (used === null) throw new Error('no spillway_broker_buffered_request_bytes gauge');
        peak = Math.max(peak, used);
        // Stop at the first reading over the budget (asserted below) or once every frame timed out.
        return used > BUDGET || clients.every((c) => c.closed);
      },
      { timeoutMs: 90_000, intervalMs: 100, what: 'every half-sent frame to time out' },
    );
    expect(peak).toBeLessThanOrEqual(BUDGET);
    expect(peak).toBeGreaterThan(0);
    expect(await metric('spillway_broker_buffered_request_bytes')).toBe(0);
    expect(await metric('spillway_broker_protocol_errors_total', 'reason="request_timeout"')).toBeGreaterThanOrEqual(24);
    await steadyProgresses(m);
  }, 120_000);

  it('slowloris: a frame trickled a byte at a time is closed by the read timeout, whatever the idle timeout', async () => {
    const m = mark();
    const before = (await metric('spillway_broker_protocol_errors_total', 'reason="request_timeout"')) ?? 0;
    const slow = await Promise.all(Array.from({ length: 5 }, () => RawConnection.connect(broker.port)));
    const head = Buffer.alloc(4);
    head.writeInt32BE(10_000);
    for (const c of slow) c.send(head.subarray(0, 2)); // even the size prefix arrives slowly
    let i = 0;
    const trickle = setInterval(() => {
      for (const c of slow) if (!c.closed) c.send(i < 2 ? head.subarray(2 + i, 3 + i) : Buffer.from([i & 0xff]));
      i++;
    }, 100);
    try {
      await Promise.all(slow.map((c) => c.closedPromise));
    } finally {
      clearInterval(trickle);
    }
    expect(i).toBeGreaterThan(5); // they were trickling when closed, so the idle timer never fired
    expect(await metric('spillway_broker_protocol_errors_total', 'reason="request_timeout"')).toBeGreaterThanOrEqual(before + 5);
    await steadyProgresses(m);
  }, 60_000);

  it('a connection flood beyond --max-connections is refused; connected clients keep being served; new ones are accepted after', async () => {
    const m = mark();
    const flood = (await Promise.allSettled(Array.from({ length: 150 }, () => RawConnection.connect(broker.port))))
      .filter((r): r is PromiseFulfilledResult<RawConnection> => r.status === 'fulfilled')
      .map((r) => r.value);
    await waitFor(() => flood.filter((c) => c.closed).length >= 150 - MAX_CONNECTIONS, { timeoutMs: 30_000, what: 'connections over the limit to be closed' });
    expect(await metric('spillway_broker_connections')).toBeLessThanOrEqual(MAX_CONNECTIONS);
    await steadyProgresses(m);
    for (const c of flood) c.close();
    await waitFor(async () => ((await metric('spillway_broker_connections')) ?? 99) < 10, { timeoutMs: 30_000, what: 'the flood to be gone' });
    const fresh = await fetchAll(broker.port, 'steady', 0);
    expect(fresh.length).toBeGreaterThan(0);
  }, 90_000);

  it('afterwards: every acknowledged record was consumed, the broker never exited, and its peak RSS stayed bounded', async () => {
    const total = acked;
    await waitFor(() => [...Array(total).keys()].every((i) => consumed.has(`steady-${i}`)), { timeoutMs: 60_000, what: 'every acked record consumed' });
    expect(broker.proc.exitCode).toBeNull();
    const status = fs.readFileSync(`/proc/${broker.proc.pid}/status`, 'utf8');
    expect(kib(status, 'VmHWM')).toBeLessThan(400 * 1024);
    expect(kib(status, 'VmRSS')).toBeLessThan(400 * 1024);
  }, 90_000);
});
