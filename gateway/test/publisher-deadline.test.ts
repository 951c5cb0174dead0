/**
 * The publisher's append timeout (one deadline timer for all records): when the broker stops
 * answering, a record in flight and a record queued behind it are both answered with a timeout
 * within requestTimeoutMs; the queued one, already answered, is never appended afterwards; and
 * the publisher works again once the broker answers.
 */
import net from 'node:net';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startBrokerProcess, waitFor, type BrokerProcess } from '../../lib/src/testing/processes.ts';
import { KafkajsPublisher } from '../src/publisher.ts';
import { readOrders } from './support/log.ts';

/** A TCP proxy that, while stalled, holds the broker's answers back (the connection stays open). */
async function startStallProxy(targetPort: number, listenPort: number) {
  let stalled = false;
  const held: { to: net.Socket; data: Buffer }[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (d: Buffer) => upstream.write(d));
    upstream.on('data', (d: Buffer) => {
      if (stalled) held.push({ to: client, data: d });
      else client.write(d);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  });
  await new Promise<void>((resolve) => server.listen(listenPort, '127.0.0.1', () => resolve()));
  return {
    stall: () => (stalled = true),
    release: () => {
      stalled = false;
      for (const { to, data } of held.splice(0)) if (!to.destroyed) to.write(data);
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let broker: BrokerProcess | undefined;
let proxy: Awaited<ReturnType<typeof startStallProxy>> | undefined;
let publisher: KafkajsPublisher | undefined;
afterAll(async () => {
  await publisher?.close();
  await proxy?.close();
  await broker?.kill('SIGKILL');
});

describe('KafkajsPublisher append timeout', () => {
  it('answers in-flight and queued records with a timeout when the broker stalls, never appends the queued one, and recovers', async () => {
    const proxyPort = await freePort();
    broker = await startBrokerProcess({ args: ['--advertised-port', String(proxyPort)] });
    proxy = await startStallProxy(broker.port, proxyPort);
    publisher = new KafkajsPublisher({ brokers: [`127.0.0.1:${proxyPort}`], clientId: 'deadline-test', lingerMs: 0, maxBatch: 100, requestTimeoutMs: 1500, log: pino({ enabled: false }) });
    await publisher.connect();
    await publisher.ensureTopic('dl', 1);
    const before = await publisher.publish({ topic: 'dl', key: 'k', value: JSON.stringify({ n: 'before' }) });

    proxy.stall();
    const inFlight = publisher.publish({ topic: 'dl', key: 'k', value: JSON.stringify({ n: 'in-flight' }) });
    // Queued behind the stalled produce request (one request in flight at a time): published
    // once that request has left (records published in the same turn share one request).
    await new Promise((r) => setTimeout(r, 200));
    const queued = publisher.publish({ topic: 'dl', key: 'k', value: JSON.stringify({ n: 'queued' }) });
    const outcomes = await Promise.allSettled([inFlight, queued]);
    for (const o of outcomes) {
      expect(o.status).toBe('rejected');
      expect((o as PromiseRejectedResult).reason).toMatchObject({ code: 'BUFFER_UNAVAILABLE', message: expect.stringMatching(/^append timed out after 1500 ms/) as unknown });
    }
    proxy.release();

    // Working again (kafkajs may need its own retries and a new producer first).
    const after = await waitFor(
      () =>
        (publisher as KafkajsPublisher).publish({ topic: 'dl', key: 'k', value: JSON.stringify({ n: 'after' }) }).then(
          (p) => p,
          () => null,
        ),
      { what: 'the publisher to append again', timeoutMs: 30_000, intervalMs: 200 },
    );
    const log = (await readOrders(broker.port, 'dl', [0])).filter((r) => r.offset >= before.offset);
    const values = log.map((r) => (r.order as unknown as { n: string }).n);
    expect(values[0]).toBe('before');
    expect(values).toContain('after');
    expect(log.find((r) => r.offset === after.offset)?.order).toEqual({ n: 'after' });
    // The queued record was answered "timed out" before it was sent: it must not be in the log.
    expect(values).not.toContain('queued');
  });
});
