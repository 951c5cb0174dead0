/**
 * The reference for the drainer's throughput: the simplest correct consumer one could write
 * instead. A kafkajs consumer-group consumer (eachBatch) that POSTs every record to the
 * simulator over a keep-alive undici pool, BARE_IN_FLIGHT requests at a time, with the order id
 * as Idempotency-Key (parsed from the JSON, as the drainer does), and commits each batch's
 * offsets once all its records are answered. No queue, no rate limit, no retries beyond
 * counting failures. Runs as its own process (like a drainer); settings come from BARE_* env
 * vars set by bench/drainer.ts. Logs `{"msg":"bare running"}` once consuming and
 * `{"msg":"bare stopped","posted","failed"}` on SIGTERM.
 */
import { Kafka, logLevel } from 'kafkajs';
import { Pool } from 'undici';

function need(name: string): string {
  const v = process.env[name];
  if (v === undefined || v === '') throw new Error(`${name} is required`);
  return v;
}

const brokers = need('BARE_BROKERS').split(',');
const topic = need('BARE_TOPIC');
const groupId = need('BARE_GROUP');
const url = new URL(need('BARE_URL'));
const inFlight = Number(need('BARE_IN_FLIGHT'));

const pool = new Pool(url.origin, { connections: inFlight, pipelining: 1, keepAliveTimeout: 30_000 });
const kafka = new Kafka({ clientId: 'bench-bare', brokers, logLevel: logLevel.NOTHING });
const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, sessionTimeout: 30_000, heartbeatInterval: 1000 });

let posted = 0;
let failed = 0;

async function post(value: string): Promise<void> {
  let orderId = '';
  try {
    const o = JSON.parse(value) as { orderId?: unknown };
    if (typeof o.orderId === 'string') orderId = o.orderId;
  } catch {
    // not JSON: no key; the simulator answers 400 and it counts as failed
  }
  try {
    const res = await pool.request({
      path: url.pathname,
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': orderId },
      body: value,
    });
    await res.body.dump();
    if (res.statusCode === 200) posted++;
    else failed++;
  } catch {
    failed++;
  }
}

await consumer.connect();
await consumer.subscribe({ topic, fromBeginning: true });
await consumer.run({
  autoCommit: false,
  eachBatchAutoResolve: false,
  eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
    const messages = batch.messages;
    let next = 0;
    const lane = async () => {
      while (next < messages.length && isRunning() && !isStale()) {
        const m = messages[next++];
        await post(m.value?.toString() ?? '');
      }
    };
    await Promise.all(Array.from({ length: Math.min(inFlight, messages.length) }, lane));
    if (!isRunning() || isStale() || messages.length === 0) return;
    const last = messages[messages.length - 1].offset;
    resolveOffset(last);
    await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: String(Number(last) + 1) }]);
    await heartbeat();
  },
});
process.stdout.write(`${JSON.stringify({ msg: 'bare running' })}\n`);

process.once('SIGTERM', () => {
  void (async () => {
    await consumer.disconnect();
    await pool.close();
    process.stdout.write(`${JSON.stringify({ msg: 'bare stopped', posted, failed })}\n`);
    process.exit(0);
  })();
});
