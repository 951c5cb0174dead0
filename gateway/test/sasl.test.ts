/**
 * Kafka SASL credentials for the clients: a gateway process with KAFKA_SASL_* accepts an order
 * end to end against a broker that requires SASL/PLAIN (and cannot start with a wrong password);
 * the gateway and drainer settings pass the credentials to kafkajs and redact the password.
 */
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, redactedConfig } from '../../lib/src/config.ts';
import { run, spillwayBin, startBrokerProcess, startGatewayProcess, startRedis, waitFor, type BrokerProcess, type GatewayProcess, type RedisProcess } from '../../lib/src/testing/processes.ts';
import { gatewaySettings, loadGatewayConfig } from '../src/config.ts';
import { kafkaSasl } from '../../lib/src/kafka-sasl.ts';
import { drainerSettings, loadDrainerConfig } from '../../drainer/src/config.ts';
import { KafkajsLogClient } from '../../drainer/src/log-client.ts';

const PASSWORD = 'gw-Pa55:word';
let redis: RedisProcess;
let broker: BrokerProcess;
let gateway: GatewayProcess | undefined;

beforeAll(async () => {
  [redis, broker] = await Promise.all([startRedis(), startBrokerProcess({ env: { SPILLWAY_SASL_PLAIN_USERS: `gateway:${PASSWORD},reader:r` } })]);
});
afterAll(async () => {
  await gateway?.kill('SIGTERM');
  await broker?.kill('SIGTERM');
  await redis?.stop();
});

describe('gateway against a SASL/PLAIN broker', () => {
  it('accepts an order end to end with KAFKA_SASL_* set; the order is in the log', async () => {
    gateway = await startGatewayProcess({
      redisUrl: redis.url,
      kafkaBrokers: broker.bootstrap,
      env: { KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'gateway', KAFKA_SASL_PASSWORD: PASSWORD, SPILLWAY_ORDERS_TOPIC: 'sasl-orders' },
    });
    const res = await fetch(`${gateway.url}/v1/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sku: 'SASL-SKU', userId: 'u-1', quantity: 1, priceCents: 1234 }),
    });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { orderId: string; partition: number; offset: number };

    const kafka = new Kafka({ brokers: [broker.bootstrap], logLevel: logLevel.NOTHING, sasl: { mechanism: 'plain', username: 'reader', password: 'r' } });
    const consumer = kafka.consumer({ groupId: 'sasl-gw-check', maxWaitTimeInMs: 100 });
    const found: { partition: number; offset: number; value: string }[] = [];
    await consumer.connect();
    await consumer.subscribe({ topic: 'sasl-orders', fromBeginning: true });
    await consumer.run({ eachMessage: async ({ partition, message }) => void found.push({ partition, offset: Number(message.offset), value: message.value?.toString() ?? '' }) });
    await waitFor(() => found.length > 0, { timeoutMs: 30_000, what: 'the order in the log' });
    await consumer.disconnect();
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ partition: body.partition, offset: body.offset });
    expect(found[0].value).toContain(body.orderId);
    expect(JSON.stringify(gateway.logs)).not.toContain(PASSWORD);
  }, 60_000);

  it('does not start with a wrong password', async () => {
    const r = await run(
      'env',
      ['KAFKA_SASL_USERNAME=gateway', 'KAFKA_SASL_PASSWORD=not-the-password', process.execPath, spillwayBin, 'gateway', '--port', '0', '--redis-url', redis.url, '--kafka-brokers', broker.bootstrap],
      { timeoutMs: 60_000 },
    );
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stdout.toString() + r.stderr).toMatch(/SASL PLAIN authentication failed/);
    expect(r.stdout.toString() + r.stderr).not.toContain('not-the-password');
  }, 90_000);
});

describe('drainer log client against a SASL/PLAIN broker', () => {
  it('dead-letters, consumes in its group, commits and reads lag with the credentials from its settings', async () => {
    const settings = loadDrainerConfig([], { KAFKA_SASL_USERNAME: 'gateway', KAFKA_SASL_PASSWORD: PASSWORD }).config;
    const client = new KafkajsLogClient([broker.bootstrap], 'sasl-drainer', kafkaSasl(settings));
    try {
      await client.ensureTopic('sasl-dlq', 1);
      await client.deadLetter('sasl-dlq', { key: 'k', value: 'dead', headers: { reason: 'test' } });
      const consumer = client.consumer('sasl-drainer-group', 'sasl-dlq');
      const got: string[] = [];
      await consumer.run(async (b) => {
        for (const r of b.records) got.push(r.value);
        const last = b.records.at(-1);
        if (last) {
          b.taken(last.offset);
          await consumer.commit(b.topic, b.partition, last.offset + 1);
        }
      }, () => undefined);
      await waitFor(() => got.includes('dead'), { timeoutMs: 30_000, what: 'the dead letter consumed' });
      await waitFor(async () => (await client.lag('sasl-drainer-group', 'sasl-dlq')).every((p) => p.lag === 0), { timeoutMs: 30_000, what: 'lag 0 after commit' });
      await consumer.stop();
    } finally {
      await client.close();
    }
  }, 60_000);
});

describe('KAFKA_SASL_* settings', () => {
  it('gateway and drainer pass credentials to kafkajs (plain by default) and none without a user', () => {
    const env = { KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' };
    expect(kafkaSasl(loadGatewayConfig([], env).config)).toEqual({ mechanism: 'plain', username: 'u', password: 'p' });
    expect(kafkaSasl(loadGatewayConfig(['--kafka-sasl-mechanism', 'scram-sha-512'], env).config)).toEqual({ mechanism: 'scram-sha-512', username: 'u', password: 'p' });
    expect(kafkaSasl(loadGatewayConfig([], {}).config)).toBeUndefined();
    expect(kafkaSasl(loadDrainerConfig(['--kafka-sasl-username', 'd', '--kafka-sasl-password', 'q'], { KAFKA_SASL_MECHANISM: 'scram-sha-256' }).config)).toEqual({
      mechanism: 'scram-sha-256',
      username: 'd',
      password: 'q',
    });
    expect(kafkaSasl(loadDrainerConfig([], {}).config)).toBeUndefined();
  });

  it('refuses a user without a password, the reverse, and unknown mechanisms', () => {
    expect(() => loadGatewayConfig([], { KAFKA_SASL_USERNAME: 'u' })).toThrow(ConfigError);
    expect(() => loadDrainerConfig([], { KAFKA_SASL_PASSWORD: 'p' })).toThrow(/without KAFKA_SASL_USERNAME/);
    expect(() => loadGatewayConfig([], { KAFKA_SASL_MECHANISM: 'gssapi', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' })).toThrow(/KAFKA_SASL_MECHANISM/);
  });

  it('redacts the password in --print-config', async () => {
    const g = loadGatewayConfig([], { KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'hunter2' }).config;
    expect(JSON.stringify(redactedConfig(gatewaySettings, g))).not.toContain('hunter2');
    const d = loadDrainerConfig([], { KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'hunter2' }).config;
    expect(JSON.stringify(redactedConfig(drainerSettings, d))).not.toContain('hunter2');
    const printed = await run(process.execPath, [spillwayBin, 'gateway', '--print-config', '--kafka-sasl-username', 'u', '--kafka-sasl-password', 'hunter2']);
    expect(printed.code).toBe(0);
    expect(JSON.parse(printed.stdout.toString())).toMatchObject({ kafkaSaslUsername: 'u', kafkaSaslPassword: '<redacted>', kafkaSaslMechanism: 'plain' });
  });
});
