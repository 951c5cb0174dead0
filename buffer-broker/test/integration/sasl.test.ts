/**
 * SASL/PLAIN against a real broker process: kafkajs (producer, consumer group, admin), kcat
 * (librdkafka 2.0.2) and raw protocol exchanges for the states Kafka's SaslServerAuthenticator
 * defines. Also: /metrics and /healthz reveal no record data, and no password reaches the logs.
 */
import { createRequire } from 'node:module';
import { Kafka, logLevel, type KafkaConfig } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, startBrokerProcess, waitFor, type BrokerProcess } from '../../../lib/src/testing/processes.ts';
import { RawConnection, encodeRequest, kafkajsApi } from '../support/raw-client.ts';

const require = createRequire(import.meta.url);
const plainToken = require('kafkajs/src/protocol/sasl/plain/request.js') as (a: { username: string; password: string }) => { encode(): Promise<Buffer> };

const PASSWORD = 'S3cr3t-pa55,word';
const WRONG = 'wrong-hunter2';
let broker: BrokerProcess;
let plainBroker: BrokerProcess;

beforeAll(async () => {
  [broker, plainBroker] = await Promise.all([
    startBrokerProcess({ env: { SPILLWAY_SASL_PLAIN_USERS: `alice:${PASSWORD.replace(',', '')},shop:shop-pw` }, args: ['--group-initial-rebalance-delay-ms', '0'] }),
    startBrokerProcess(),
  ]);
});
afterAll(async () => {
  await Promise.all([broker?.kill('SIGTERM'), plainBroker?.kill('SIGTERM')]);
});

const GOOD = PASSWORD.replace(',', '');
const kafka = (sasl: KafkaConfig['sasl'], retries = 5) =>
  new Kafka({ clientId: 'sasl-test', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING, sasl, retry: { retries, initialRetryTime: 100 }, connectionTimeout: 5000 });

async function metrics(b: BrokerProcess = broker): Promise<string> {
  return (await fetch(`http://127.0.0.1:${b.metricsPort}/metrics`)).text();
}
function counter(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels === '' ? ' ' : `{${labels}} `}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

/** Log end offsets of a topic, read with good credentials. */
async function endOffsets(topic: string): Promise<number[]> {
  const admin = kafka({ mechanism: 'plain', username: 'alice', password: GOOD }).admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).map((p) => Number(p.high));
  } finally {
    await admin.disconnect();
  }
}

async function apiKeys(b: BrokerProcess): Promise<number[]> {
  const c = await RawConnection.connect(b.port);
  const res = await c.call<{ apiVersions: { apiKey: number; minVersion: number; maxVersion: number }[] }>(kafkajsApi('apiVersions', 2, {}), 1);
  c.close();
  return res.apiVersions.filter((a) => a.apiKey === 17 || a.apiKey === 36).map((a) => a.apiKey * 100 + a.minVersion * 10 + a.maxVersion);
}

describe('SASL/PLAIN', () => {
  it('advertises SaslHandshake 0-1 and SaslAuthenticate 0-1 only when SASL is on', async () => {
    expect(await apiKeys(broker)).toEqual([1701, 3601]);
    expect(await apiKeys(plainBroker)).toEqual([]);
  });

  it('kafkajs with good credentials produces (idempotent) and consumes in a group', async () => {
    const k = kafka({ mechanism: 'plain', username: 'alice', password: GOOD });
    const admin = k.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'sasl-orders', numPartitions: 3 }] });
    await admin.disconnect();
    const producer = k.producer({ idempotent: true });
    await producer.connect();
    const values = Array.from({ length: 60 }, (_, i) => `order-${i}`);
    await producer.send({ topic: 'sasl-orders', acks: -1, messages: values.map((value, i) => ({ key: `k${i % 5}`, value })) });
    await producer.disconnect();
    const seen = new Set<string>();
    const consumer = k.consumer({ groupId: 'sasl-group', sessionTimeout: 10_000, heartbeatInterval: 300, maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic: 'sasl-orders', fromBeginning: true });
    await consumer.run({ eachMessage: async ({ message }) => void seen.add(message.value?.toString() ?? '') });
    await waitFor(() => seen.size === values.length, { timeoutMs: 60_000, what: 'all records consumed' });
    await consumer.disconnect();
    expect([...seen].sort()).toEqual([...values].sort());
    expect(counter(await metrics(), 'spillway_broker_authentications_total')).toBeGreaterThan(0);
  }, 90_000);

  it('kafkajs with a wrong password gets a SASL authentication error and writes nothing', async () => {
    const before = counter(await metrics(), 'spillway_broker_authentication_failures_total', 'reason="bad_credentials"');
    const producer = kafka({ mechanism: 'plain', username: 'alice', password: WRONG }, 0).producer();
    const err = await producer.connect().then(
      () => producer.send({ topic: 'sasl-orders', messages: [{ value: 'must-not-land' }] }),
    ).then(() => null, (e: unknown) => e);
    await producer.disconnect().catch(() => undefined);
    expect(err).toMatchObject({ name: 'KafkaJSSASLAuthenticationError' });
    expect(String((err as Error).message)).toMatch(/Invalid username or password/);
    expect(await endOffsets('sasl-orders')).toEqual([expect.any(Number), expect.any(Number), expect.any(Number)]);
    expect((await endOffsets('sasl-orders')).reduce((a, b) => a + b, 0)).toBe(60);
    expect(counter(await metrics(), 'spillway_broker_authentication_failures_total', 'reason="bad_credentials"')).toBeGreaterThan(before);
  });

  it('kafkajs without SASL is refused (connection closed) and writes nothing', async () => {
    const before = counter(await metrics(), 'spillway_broker_authentication_failures_total', 'reason="unauthenticated_request"');
    const producer = kafka(undefined, 1).producer();
    const err = await producer.connect().then(
      () => producer.send({ topic: 'sasl-unauth', messages: [{ value: 'must-not-land' }] }),
    ).then(() => null, (e: unknown) => e);
    await producer.disconnect().catch(() => undefined);
    expect(err).not.toBeNull();
    expect(counter(await metrics(), 'spillway_broker_authentication_failures_total', 'reason="unauthenticated_request"')).toBeGreaterThan(before);
    const admin = kafka({ mechanism: 'plain', username: 'alice', password: GOOD }).admin();
    await admin.connect();
    expect(await admin.listTopics()).not.toContain('sasl-unauth');
    await admin.disconnect();
  });

  it('kcat with SASL_PLAINTEXT produces and consumes; with a wrong password it fails', async () => {
    const sasl = (pw: string) => ['-X', 'security.protocol=SASL_PLAINTEXT', '-X', 'sasl.mechanisms=PLAIN', '-X', 'sasl.username=shop', '-X', `sasl.password=${pw}`];
    const kcat = (args: string[], input?: string) => run('kcat', ['-b', broker.bootstrap, ...args], { input, timeoutMs: 60_000 });
    const lines = Array.from({ length: 20 }, (_, i) => `kcat-${i}`);
    const p = await kcat(['-P', '-t', 'sasl-kcat', '-p', '0', ...sasl('shop-pw')], `${lines.join('\n')}\n`);
    expect(p.code).toBe(0);
    const c = await kcat(['-C', '-t', 'sasl-kcat', '-p', '0', '-o', 'beginning', '-e', '-q', ...sasl('shop-pw')]);
    expect(c.code).toBe(0);
    expect(c.stdout.toString().trim().split('\n')).toEqual(lines);
    const bad = await kcat(['-P', '-t', 'sasl-kcat', '-p', '0', '-X', 'message.timeout.ms=5000', ...sasl(WRONG)], 'must-not-land\n');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/SASL authentication error|Authentication failed/);
    expect(await endOffsets('sasl-kcat')).toEqual([20, ...Array(11).fill(0)]);
  }, 90_000);

  describe('raw protocol', () => {
    const handshake = (c: RawConnection, mechanism: string, corr: number, version = 1) =>
      c.call<{ errorCode: number; enabledMechanisms: string[] }>(kafkajsApi('saslHandshake', version, { mechanism }), corr);
    const metadata = (corr: number) => encodeRequest(kafkajsApi('metadata', 1, { topics: [] }), corr);

    it('answers an unsupported mechanism with UNSUPPORTED_SASL_MECHANISM and the enabled list, then closes', async () => {
      const c = await RawConnection.connect(broker.port);
      expect(await handshake(c, 'SCRAM-SHA-256', 1)).toEqual({ errorCode: 33, enabledMechanisms: ['PLAIN'] });
      await c.closedPromise;
    });

    it('closes without an answer on any other request before authenticating, SaslAuthenticate before the handshake, or a big frame', async () => {
      for (const bytes of [
        await metadata(1),
        await encodeRequest(kafkajsApi('saslAuthenticate', 1, { authBytes: await plainToken({ username: 'alice', password: GOOD }).encode() }), 2),
        Buffer.concat([Buffer.from([0, 0x0a, 0, 0]), Buffer.alloc(1000)]), // declares a 640 KiB frame before authenticating
      ]) {
        const c = await RawConnection.connect(broker.port);
        c.send(bytes);
        expect(await c.next(10_000)).toBeNull();
      }
    });

    it('v1: a wrong password gets SASL_AUTHENTICATION_FAILED with a message, then the connection closes', async () => {
      const c = await RawConnection.connect(broker.port);
      expect((await handshake(c, 'PLAIN', 1)).errorCode).toBe(0);
      const api = kafkajsApi('saslAuthenticate', 1, { authBytes: await plainToken({ username: 'alice', password: WRONG }).encode() });
      c.send(await encodeRequest(api, 2));
      const frame = (await c.next())!;
      expect(frame.readInt32BE(0)).toBe(2);
      const decoded = (await api.response.decode(frame.subarray(4))) as { errorCode: number; errorMessage: string };
      expect(decoded).toMatchObject({ errorCode: 58, errorMessage: 'Authentication failed: Invalid username or password' });
      expect(await c.next()).toBeNull();
    });

    it('v1: after authenticating, requests are served and a second handshake or authenticate gets ILLEGAL_SASL_STATE without closing', async () => {
      const c = await RawConnection.connect(broker.port);
      // ApiVersions first, as clients do; then the handshake and authentication pipelined with a Metadata request.
      await c.call(kafkajsApi('apiVersions', 2, {}), 1);
      c.send(Buffer.concat([
        await encodeRequest(kafkajsApi('saslHandshake', 1, { mechanism: 'PLAIN' }), 2),
        await encodeRequest(kafkajsApi('saslAuthenticate', 1, { authBytes: await plainToken({ username: 'alice', password: GOOD }).encode() }), 3),
        await metadata(4),
      ]));
      expect((await c.next())!.readInt32BE(0)).toBe(2);
      const auth = (await c.next())!;
      expect([auth.readInt32BE(0), auth.readInt16BE(4)]).toEqual([3, 0]);
      expect((await c.next())!.readInt32BE(0)).toBe(4);
      expect(await handshake(c, 'PLAIN', 5)).toEqual({ errorCode: 34, enabledMechanisms: ['PLAIN'] });
      const again = kafkajsApi('saslAuthenticate', 0, { authBytes: await plainToken({ username: 'alice', password: GOOD }).encode() });
      c.send(await encodeRequest(again, 6));
      expect(await again.response.decode((await c.next())!.subarray(4))).toMatchObject({ errorCode: 34, errorMessage: /after successful authentication/ });
      c.send(await metadata(7));
      expect((await c.next())!.readInt32BE(0)).toBe(7);
      c.close();
    });

    it('v1: a second handshake while authenticating gets ILLEGAL_SASL_STATE and closes', async () => {
      const c = await RawConnection.connect(broker.port);
      expect((await handshake(c, 'PLAIN', 1)).errorCode).toBe(0);
      expect(await handshake(c, 'PLAIN', 2)).toEqual({ errorCode: 34, enabledMechanisms: ['PLAIN'] });
      expect(await c.next()).toBeNull();
    });

    it('v0: the bare token after the handshake authenticates (empty token back); a wrong one closes', async () => {
      const good = await RawConnection.connect(broker.port);
      expect((await handshake(good, 'PLAIN', 1, 0)).errorCode).toBe(0);
      good.send(await plainToken({ username: 'alice', password: GOOD }).encode()); // already INT32-size-prefixed
      expect((await good.next())!.length).toBe(0);
      good.send(await metadata(2));
      expect((await good.next())!.readInt32BE(0)).toBe(2);
      good.close();
      const bad = await RawConnection.connect(broker.port);
      expect((await handshake(bad, 'PLAIN', 1, 0)).errorCode).toBe(0);
      bad.send(await plainToken({ username: 'alice', password: WRONG }).encode());
      expect(await bad.next()).toBeNull();
    });
  });

  it('/metrics and /healthz reveal no record data; the logs hold no password', async () => {
    const k = kafka({ mechanism: 'plain', username: 'alice', password: GOOD });
    const producer = k.producer();
    await producer.connect();
    const marker = 'customer-4711-card-4242424242424242';
    await producer.send({ topic: 'sasl-private', messages: [{ key: `user-${marker}`, value: JSON.stringify({ order: marker, email: `${marker}@example.com` }), headers: { h: marker } }] });
    await producer.disconnect();
    const m = await metrics();
    expect(m).toContain('spillway_broker_messages_in_total{topic="sasl-private"} 1');
    // Look for the marker's letters, not its digits alone: a metric's value (a histogram
    // sum like 0.0042424242…) can contain any run of digits.
    expect(m).not.toContain('card-4242');
    expect(m).not.toContain('customer-4711');
    expect(m).not.toContain('example.com');
    const h = await (await fetch(`http://127.0.0.1:${broker.metricsPort}/healthz`)).text();
    expect(h).not.toContain('card-4242');
    const logs = JSON.stringify(broker.logs) + broker.stderr.join('');
    expect(logs).toContain('SASL authentication failed');
    for (const secret of [GOOD, WRONG, 'shop-pw']) expect(logs).not.toContain(secret);
  });
});
