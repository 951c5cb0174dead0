/**
 * Consumer groups and the idempotent producer with kafkajs 2.2.4 against a real broker process:
 * rebalancing groups, one stream feeding two groups, committed offsets across SIGKILL, a lost
 * produce acknowledgement, the admin API calls kafkajs exposes, and the broker's own group admin
 * HTTP API and lag metrics.
 */
import { Kafka, logLevel, type Consumer, type Kafka as KafkaClient } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startBrokerProcess, tempDir, waitFor, type BrokerProcess } from '../../../lib/src/testing/processes.ts';
import { fetchAll } from '../support/fetch-all.ts';
import { startDropProxy } from '../support/drop-proxy.ts';

const brokers: BrokerProcess[] = [];
afterAll(async () => {
  for (const b of brokers) await b.kill('SIGKILL');
});

async function broker(opts: { dataDir?: string; args?: string[] } = {}): Promise<BrokerProcess> {
  const b = await startBrokerProcess(opts);
  brokers.push(b);
  return b;
}

function client(b: BrokerProcess | string, id = 'groups-test'): KafkaClient {
  return new Kafka({ clientId: id, brokers: [typeof b === 'string' ? b : b.bootstrap], logLevel: logLevel.NOTHING });
}

const consumerOpts = { sessionTimeout: 10_000, rebalanceTimeout: 10_000, heartbeatInterval: 300, maxWaitTimeInMs: 100, retry: { retries: 10, initialRetryTime: 100 } };

/** A consumer that counts every value it receives into `seen`. */
async function member(kafka: KafkaClient, groupId: string, topic: string, seen: Map<string, number>): Promise<Consumer> {
  const c = kafka.consumer({ groupId, ...consumerOpts });
  await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  await c.run({
    autoCommitInterval: 100,
    eachMessage: async ({ message }) => {
      const v = message.value?.toString() ?? '';
      seen.set(v, (seen.get(v) ?? 0) + 1);
    },
  });
  return c;
}

describe('consumer groups (kafkajs)', () => {
  it('delivers every record exactly once per group while members join and leave, and a second group gets everything independently', async () => {
    const b = await broker();
    const kafka = client(b);
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'fanout', numPartitions: 12 }] });
    const producer = kafka.producer();
    await producer.connect();
    const total = 3000;
    const values = Array.from({ length: total }, (_, i) => `order-${i}`);
    const produceAll = (async () => {
      for (let i = 0; i < total; i += 100) {
        await producer.send({ topic: 'fanout', messages: values.slice(i, i + 100).map((value, j) => ({ key: `sku-${(i + j) % 50}`, value })) });
        await new Promise((r) => setTimeout(r, 30));
      }
    })();

    const a = new Map<string, number>();
    const bSeen = new Map<string, number>();
    const a1 = await member(client(b, 'a1'), 'fulfilment', 'fanout', a);
    const other = await member(client(b, 'b1'), 'analytics', 'fanout', bSeen);
    await waitFor(() => a.size > 200, { what: 'first member to consume' });
    const a2 = await member(client(b, 'a2'), 'fulfilment', 'fanout', a);
    const a3 = await member(client(b, 'a3'), 'fulfilment', 'fanout', a);
    await waitFor(async () => (await admin.describeGroups(['fulfilment'])).groups[0].members.length === 3, { what: 'three members' });
    await waitFor(() => a.size > 1500, { what: 'progress with three members' });
    await a2.disconnect(); // leaves the group: a rebalance hands its partitions to the others
    await produceAll;
    await waitFor(() => a.size === total && bSeen.size === total, { timeoutMs: 40_000, what: 'every record in both groups' });
    await new Promise((r) => setTimeout(r, 500)); // would surface late duplicates

    expect([...a.values()].filter((n) => n > 1)).toEqual([]);
    expect([...bSeen.values()].filter((n) => n > 1)).toEqual([]);
    expect(new Set(a.keys())).toEqual(new Set(values));
    expect(new Set(bSeen.keys())).toEqual(new Set(values));

    const described = (await admin.describeGroups(['fulfilment', 'analytics'])).groups;
    expect(described.map((g) => [g.groupId, g.state, g.members.length])).toEqual([
      ['fulfilment', 'Stable', 2],
      ['analytics', 'Stable', 1],
    ]);
    for (const c of [a1, a3, other]) await c.disconnect();
    await producer.disconnect();
    await admin.disconnect();
  }, 90_000);

  it('resumes from committed offsets after the broker is SIGKILLed', async () => {
    const dataDir = tempDir('groups-kill');
    let b = await broker({ dataDir });
    let kafka = client(b);
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'resume', numPartitions: 4 }] });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: 'resume', messages: Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, value: `first-${i}` })) });
    const seen = new Map<string, number>();
    const c = await member(kafka, 'resumer', 'resume', seen);
    await waitFor(() => seen.size === 200, { what: 'first 200' });
    await waitFor(
      async () => (await admin.fetchOffsets({ groupId: 'resumer', topics: ['resume'] }))[0].partitions.reduce((n, p) => n + Number(p.offset), 0) === 200,
      { what: 'offsets committed' },
    );
    await c.stop();
    await producer.disconnect();
    await admin.disconnect();
    await b.kill('SIGKILL');

    b = await broker({ dataDir });
    kafka = client(b);
    const p2 = kafka.producer();
    await p2.connect();
    await p2.send({ topic: 'resume', messages: Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: `second-${i}` })) });
    const after = new Map<string, number>();
    const c2 = await member(kafka, 'resumer', 'resume', after);
    await waitFor(() => after.size === 100, { what: 'the 100 new records' });
    await new Promise((r) => setTimeout(r, 500));
    expect([...after.keys()].every((v) => v.startsWith('second-'))).toBe(true);
    expect(after.size).toBe(100);
    await c2.disconnect();
    await p2.disconnect();
  }, 60_000);

  it('does not duplicate when an idempotent produce is retried after a lost acknowledgement', async () => {
    const dataDir = tempDir('idem');
    // The broker advertises the proxy's port, so every kafkajs connection goes through it.
    const proxyPort = await freePort();
    const b = await broker({ dataDir, args: ['--advertised-port', String(proxyPort)] });
    const proxy = await startDropProxyOn(proxyPort, b.port);
    try {
      const kafka = new Kafka({ clientId: 'idem', brokers: [`127.0.0.1:${proxyPort}`], logLevel: logLevel.NOTHING, retry: { retries: 5, initialRetryTime: 100 } });
      const admin = kafka.admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic: 'idem', numPartitions: 1 }] });
      await admin.disconnect();
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      await producer.send({ topic: 'idem', messages: [{ value: 'before' }] });
      proxy.dropNextProduceResponses(1);
      const res = await producer.send({ topic: 'idem', messages: [{ value: 'lost-ack-1' }, { value: 'lost-ack-2' }] });
      expect(proxy.dropped).toBe(1);
      expect(res[0].errorCode).toBe(0);
      expect(res[0].baseOffset).toBe('1');
      await producer.send({ topic: 'idem', messages: [{ value: 'after' }] });
      await producer.disconnect();
      expect((await fetchAll(b.port, 'idem', 0)).map((r) => r.value?.toString())).toEqual(['before', 'lost-ack-1', 'lost-ack-2', 'after']);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('serves the admin calls kafkajs exposes, and the broker admin API reports lag and resets offsets', async () => {
    const b = await broker();
    const kafka = client(b);
    const admin = kafka.admin();
    await admin.connect();
    expect(await admin.createTopics({ topics: [{ topic: 'adm', numPartitions: 3 }] })).toBe(true);
    const producer = kafka.producer();
    await producer.connect();
    const t0 = Date.now() - 60_000;
    await producer.send({ topic: 'adm', messages: Array.from({ length: 30 }, (_, i) => ({ value: `a${i}`, partition: i % 3, timestamp: String(t0 + i * 1000) })) });
    expect((await admin.fetchTopicOffsets('adm')).map((o) => o.high)).toEqual(['10', '10', '10']);

    const seen = new Map<string, number>();
    const c = await member(kafka, 'adm-group', 'adm', seen);
    await waitFor(() => seen.size === 30, { what: 'consumption' });
    await waitFor(async () => (await admin.fetchOffsets({ groupId: 'adm-group', topics: ['adm'] }))[0].partitions.every((p) => p.offset === '10'), { what: 'commits' });
    expect((await admin.listGroups()).groups).toContainEqual({ groupId: 'adm-group', protocolType: 'consumer' });
    expect((await admin.describeGroups(['adm-group'])).groups[0].state).toBe('Stable');

    const http = `http://127.0.0.1:${b.metricsPort}`;
    // A reset while the group has members is refused.
    const busy = await fetch(`${http}/admin/groups/adm-group/reset-offsets`, { method: 'POST', body: JSON.stringify({ to: 'earliest' }) });
    expect(busy.status).toBe(409);
    expect(((await busy.json()) as { error: { code: string } }).error.code).toBe('GROUP_HAS_MEMBERS');
    await c.disconnect();
    await waitFor(async () => (await admin.describeGroups(['adm-group'])).groups[0].state === 'Empty', { what: 'group empty' });

    // kafkajs resetOffsets commits the logical offset -2 ("earliest") through a temporary consumer, as against Kafka.
    await admin.resetOffsets({ groupId: 'adm-group', topic: 'adm', earliest: true });
    expect((await admin.fetchOffsets({ groupId: 'adm-group', topics: ['adm'] }))[0].partitions.map((p) => p.offset)).toEqual(['-2', '-2', '-2']);
    await admin.setOffsets({ groupId: 'adm-group', topic: 'adm', partitions: [0, 1, 2].map((partition) => ({ partition, offset: '0' })) });
    expect((await admin.fetchOffsets({ groupId: 'adm-group', topics: ['adm'] }))[0].partitions.map((p) => p.offset)).toEqual(['0', '0', '0']);

    // Lag in messages and seconds, over HTTP and /metrics.
    const groups = (await (await fetch(`${http}/admin/groups`)).json()) as { groups: { groupId: string; lag: number; partitions: { lag: number; lagSeconds: number }[] }[] };
    const g = groups.groups.find((x) => x.groupId === 'adm-group')!;
    expect(g.lag).toBe(30);
    expect(Math.min(...g.partitions.map((p) => p.lagSeconds))).toBeGreaterThan(30);
    const metrics = await (await fetch(`${http}/metrics`)).text();
    expect(metrics).toMatch(/spillway_broker_group_lag_messages\{group="adm-group",topic="adm",partition="0"\} 10/);
    expect(metrics).toMatch(/spillway_broker_group_lag_seconds\{group="adm-group",topic="adm",partition="0"\} \d+/);

    // The broker's own reset: latest, then by timestamp.
    const latest = await fetch(`${http}/admin/groups/adm-group/reset-offsets`, { method: 'POST', body: JSON.stringify({ to: 'latest' }) });
    expect(latest.status).toBe(200);
    expect((await admin.fetchOffsets({ groupId: 'adm-group', topics: ['adm'] }))[0].partitions.map((p) => p.offset)).toEqual(['10', '10', '10']);
    const byTime = await fetch(`${http}/admin/groups/adm-group/reset-offsets`, { method: 'POST', body: JSON.stringify({ to: 'timestamp', timestamp: t0 + 15_000 }) });
    expect(byTime.status).toBe(200);
    // Record i is on partition i % 3 with timestamp t0 + i s: from i = 15 on, i.e. offsets 5, 5, 5.
    expect((await admin.fetchOffsets({ groupId: 'adm-group', topics: ['adm'] }))[0].partitions.map((p) => p.offset)).toEqual(['5', '5', '5']);
    const bad = await fetch(`${http}/admin/groups/adm-group/reset-offsets`, { method: 'POST', body: '{"to":"yesterday"}' });
    expect(bad.status).toBe(400);

    await admin.deleteTopics({ topics: ['adm'] });
    expect(await admin.listTopics()).not.toContain('adm');
    await producer.disconnect();
    await admin.disconnect();
  }, 60_000);
});

/** A drop proxy on a fixed port (the one the broker advertises). */
async function startDropProxyOn(port: number, target: number) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await startDropProxy(target, port);
    } catch (err) {
      if (attempt > 20) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
