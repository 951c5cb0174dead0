/** Metrics and health endpoints, and graceful shutdown on SIGTERM (in-flight produce finishes, nothing acknowledged is lost). */
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { run, startBrokerProcess, tempDir, type BrokerProcess } from '../../../lib/src/testing/processes.ts';
import { fetchAll } from '../support/fetch-all.ts';

let broker: BrokerProcess | undefined;
afterAll(async () => {
  await broker?.kill('SIGKILL');
});

function metricValue(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`) || (labels === '' && l.startsWith(`${name} `)));
  return line ? Number(line.split(' ').pop()) : Number.NaN;
}

describe('broker lifecycle', () => {
  it('exposes /metrics and /healthz', async () => {
    broker = await startBrokerProcess();
    const health = await fetch(`http://127.0.0.1:${broker.metricsPort}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok' });
    const lines = Array.from({ length: 100 }, (_, i) => `m${i}`).join('\n');
    expect((await run('kcat', ['-b', broker.bootstrap, '-P', '-t', 'metered', '-p', '2'], { input: `${lines}\n` })).code).toBe(0);
    expect((await run('kcat', ['-b', broker.bootstrap, '-C', '-t', 'metered', '-p', '2', '-o', 'beginning', '-e', '-q'])).code).toBe(0);
    const text = await (await fetch(`http://127.0.0.1:${broker.metricsPort}/metrics`)).text();
    expect(metricValue(text, 'spillway_broker_messages_in_total', 'topic="metered"')).toBe(100);
    expect(metricValue(text, 'spillway_broker_bytes_in_total', 'topic="metered"')).toBeGreaterThan(100 * 3);
    expect(metricValue(text, 'spillway_broker_bytes_out_total', 'topic="metered"')).toBeGreaterThan(100 * 3);
    expect(metricValue(text, 'spillway_broker_messages_out_total', 'topic="metered"')).toBe(100);
    expect(metricValue(text, 'spillway_broker_log_end_offset', 'topic="metered",partition="2"')).toBe(100);
    expect(metricValue(text, 'spillway_broker_log_size_bytes', 'topic="metered",partition="2"')).toBeGreaterThan(0);
    expect(metricValue(text, 'spillway_broker_fsync_duration_seconds_count', '')).toBeGreaterThan(0);
    expect(text).toMatch(/spillway_broker_request_duration_seconds_bucket\{le="[^"]+",api="Produce"\}/);
    expect(text).toMatch(/spillway_broker_requests_total\{api="Fetch",outcome="ok"\} \d+/);
    expect((await fetch(`http://127.0.0.1:${broker.metricsPort}/nope`)).status).toBe(404);
    await broker.kill('SIGTERM');
  });

  it('finishes in-flight produce on SIGTERM, exits 0, and loses nothing acknowledged', async () => {
    const dataDir = tempDir('sigterm');
    broker = await startBrokerProcess({ dataDir });
    const kafka = new Kafka({ brokers: [broker.bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 0 } });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'graceful', numPartitions: 3 }] });
    await admin.disconnect();
    const producer = kafka.producer({ retry: { retries: 0 } });
    await producer.connect();
    const acked = new Map<string, string>();
    let stop = false;
    const loops = [0, 1, 2].map(async (partition) => {
      for (let seq = 0; !stop; seq++) {
        const values = Array.from({ length: 10 }, (_, i) => `g${partition}-${seq}-${i}`);
        try {
          const [res] = await producer.send({ topic: 'graceful', messages: values.map((value) => ({ value, partition })) });
          values.forEach((v, i) => acked.set(`${partition}:${Number(res.baseOffset) + i}`, v));
        } catch {
          return;
        }
      }
    });
    await new Promise((r) => setTimeout(r, 500));
    const code = await broker.kill('SIGTERM');
    stop = true;
    await Promise.all(loops);
    await producer.disconnect().catch(() => undefined);
    expect(code).toBe(0);
    expect(broker.logs.some((l) => l.msg === 'stopped')).toBe(true);
    expect(acked.size).toBeGreaterThan(0);

    broker = await startBrokerProcess({ dataDir });
    for (let p = 0; p < 3; p++) {
      const byOffset = new Map((await fetchAll(broker.port, 'graceful', p)).map((r) => [Number(r.offset), r.value?.toString()]));
      for (const [key, value] of acked) {
        const [part, offset] = key.split(':').map(Number);
        if (part === p) expect(byOffset.get(offset)).toBe(value);
      }
    }
  });
});
