/**
 * The three systems of the end-to-end phases, as setups for e2e.ts: each creates a fresh
 * topic/stream and consumer group, connects its producer before the clock starts, and describes
 * the consumer task its group-worker members run.
 *
 * Producers (chosen so that the server, not the producing client, is what is measured, within
 * what each system offers):
 * - Spillway: by default the bench's own Kafka wire producer (kafka-wire-producer.ts: Produce v7,
 *   acks=-1, one record batch per send, up to 5 requests in flight), the counterpart of Redis's
 *   raw RESP; with BENCH_GROUP_PRODUCER=kcat, kcat (librdkafka, C) reading stamped lines from a
 *   pipe, acks=-1 (KCAT_PRODUCE_SETTINGS). kcat costs ~0.9 us of CPU per record, 0.6-0.7 cores
 *   while it produces, which the consumers then lack; a kafkajs producer needs about a core for
 *   40,000 records/s, half of this machine.
 * - Redis: the raw RESP client (resp.ts), XADD pipelined `maxChunk` at a time, each pipeline
 *   awaited (appendfsync always). ioredis would spend 2-3x the time per pipeline in JS (see the
 *   produce phases), which would measure ioredis, not Redis; the consumers do use ioredis.
 * - JetStream: async publishes (nats.js core publishes with a reply subject, PubAcks counted on
 *   one subscription, as Go's PublishAsync does), a window of `maxChunk` publishes whose acks are
 *   awaited together.
 */
import { AckPolicy, DeliverPolicy, StorageType, connect, createInbox, type NatsConnection } from 'nats';
import { procCpuNs } from './cpu.ts';
import { createTopics } from './kafkajs-produce.ts';
import { KafkaWireProducer } from './kafka-wire-producer.ts';
import { kcatStreamProducer } from './kcat.ts';
import { BenchError, startNats, startRedis, stopAndRemove, waitFor, type Cleanup } from './procs.ts';
import { scrape, sumOf } from './prom.ts';
import { RECORD_BYTES, nowUs, stampedPayload, writeStampedRecord } from './records.ts';
import { firstError, xaddPipeline } from './redis-streams.ts';
import { RespClient, RespError } from './resp.ts';
import type { E2eSetup } from './e2e.ts';

export const E2E_PARTITIONS = 12;

/** How the kafkajs members commit offsets (group-worker.ts); intervalMs is used by 'interval' only. */
export interface GroupCommit {
  mode: 'async' | 'awaited' | 'interval';
  intervalMs: number;
}
export const E2E_CHUNK = 1000;
/** Consumer batch sizes: XREADGROUP COUNT, JetStream fetch max_messages. */
export const E2E_CONSUMER_BATCH = 1000;
/** kafkajs maxWaitTimeInMs: bounds an idle long poll only (the broker answers once data arrives). */
export const E2E_KAFKA_MAX_WAIT_MS = 500;
export const E2E_REDIS_BLOCK_MS = 100;
/** JetStream pull expiry (the client's minimum); a pull returns early once its batch is full. */
export const E2E_JETSTREAM_EXPIRES_MS = 1000;

const KCAT_FLUSH = Buffer.alloc(2048, 0x0a);

/** Spillway's end-to-end producer: the bench's own wire producer, or kcat fed through a pipe. */
export type SpillwayProducer = 'wire' | 'kcat';

interface SpillwaySetupOptions {
  producer: SpillwayProducer;
  kcat: string;
  bootstrap: string;
  metricsPort: number;
  brokerPid: number;
  topic: string;
  timeoutMs: number;
  cleanup: Cleanup;
  commit: GroupCommit;
  partitionsConcurrently: number;
}

function spillwayTask(o: SpillwaySetupOptions): E2eSetup['task'] {
  return { system: 'kafka', kafka: { bootstrap: o.bootstrap, topic: o.topic, groupId: o.topic, maxWaitMs: E2E_KAFKA_MAX_WAIT_MS, commit: o.commit.mode, commitIntervalMs: o.commit.intervalMs, partitionsConcurrently: o.partitionsConcurrently } };
}

export async function spillwaySetup(o: SpillwaySetupOptions): Promise<E2eSetup> {
  await createTopics(o.bootstrap, [o.topic], E2E_PARTITIONS);
  const base = { task: spillwayTask(o), serverPid: o.brokerPid, maxChunk: E2E_CHUNK, partitions: E2E_PARTITIONS, teardown: async () => undefined };
  if (o.producer === 'wire') {
    const [host, port] = o.bootstrap.split(':');
    const wire = await KafkaWireProducer.connect({ host: host ?? '127.0.0.1', port: Number(port), topic: o.topic, partitions: E2E_PARTITIONS });
    return {
      ...base,
      producer: {
        send: (start, n) => wire.send(start, n, nowUs()),
        finish: () => wire.finish(),
        close: async () => wire.close(),
      },
    };
  }
  const metadataRequests = async () => sumOf(await scrape(o.metricsPort), 'spillway_broker_request_duration_seconds_count', { api: 'Metadata' });
  const before = await metadataRequests();
  const kcat = kcatStreamProducer({ kcat: o.kcat, bootstrap: o.bootstrap, topic: o.topic, timeoutMs: o.timeoutMs, cleanup: o.cleanup });
  // kcat says nothing when it is ready; on start-up it connects and asks for metadata, so wait
  // for that request (nothing else talks to the broker now), plus a moment for the answer.
  await waitFor(async () => (await metadataRequests()) > before, 30_000, 'kcat -P to connect');
  await new Promise((r) => setTimeout(r, 200));
  // kcat's CPU time, sampled while it runs: once it has exited, /proc no longer has it.
  let kcatCpuMs = 0;
  const sampleKcat = () => {
    const ns = procCpuNs(kcat.pid);
    if (Number.isFinite(ns)) kcatCpuMs = Math.max(kcatCpuMs, ns / 1e6);
  };
  const sampler = setInterval(sampleKcat, 20);
  void kcat.exit.finally(() => clearInterval(sampler)).catch(() => undefined);
  const line = RECORD_BYTES + 1;
  const freeChunks: Buffer[] = [];
  let finished = false;
  return {
    ...base,
    producer: {
      send: async (start, n) => {
        // Chunk buffers are reused once the pipe has taken them: a fresh 300 KB buffer per chunk
        // cost the bench process more in garbage collection than the stamping itself.
        const buf = freeChunks.pop() ?? Buffer.allocUnsafe(E2E_CHUNK * line);
        const stamp = nowUs();
        for (let i = 0; i < n; i++) {
          writeStampedRecord(buf, i * line, start + i, stamp);
          buf[i * line + RECORD_BYTES] = 0x0a;
        }
        // "Acknowledged" for a pipe means taken: at most one chunk waits in the bench's buffer.
        const taken = kcat.stdin.write(buf.subarray(0, n * line), () => freeChunks.push(buf));
        if (!taken) await new Promise<void>((r) => kcat.stdin.once('drain', () => r()));
      },
      // kcat -P reads its input 1 KiB at a time and hands a read's lines over only once the next
      // read returns (measured: of 20 lines of 301 B written at once, 17 were produced until more
      // input came), so the last ~1 KiB sent waits for more input or the end of the stream. Empty
      // lines are skipped by kcat, so 2 KiB of them push everything sent so far through.
      flush: async () => {
        if (!kcat.stdin.write(KCAT_FLUSH)) await new Promise<void>((r) => kcat.stdin.once('drain', () => r()));
      },
      finish: async () => {
        kcat.stdin.end();
        await kcat.exit;
        finished = true;
      },
      cpuMs: () => {
        sampleKcat();
        return kcatCpuMs;
      },
      close: async () => {
        if (!finished) {
          kcat.stdin.destroy();
          await kcat.exit.catch(() => undefined);
        }
      },
    },
  };
}

export async function redisGroupSetup(o: { redisServer: string; cleanup: Cleanup }): Promise<E2eSetup & { version: string }> {
  const server = await startRedis({ cleanup: o.cleanup, binary: o.redisServer });
  const key = 'bench-e2e';
  const group = 'bench-group';
  let client: RespClient | undefined;
  try {
    client = await RespClient.connect(server.port);
    const created = await client.command(['XGROUP', 'CREATE', key, group, '0', 'MKSTREAM']);
    if (created instanceof RespError) throw new BenchError('REDIS_GROUP', `XGROUP CREATE failed: ${created.message}`);
    const info = await client.command(['INFO', 'server']);
    const version = /redis_version:(\S+)/.exec(Buffer.isBuffer(info) ? info.toString('latin1') : '')?.[1] ?? 'unknown';
    const c = client;
    return {
      version,
      task: { system: 'redis', redis: { port: server.port, key, group, count: E2E_CONSUMER_BATCH, blockMs: E2E_REDIS_BLOCK_MS } },
      serverPid: server.pid,
      maxChunk: E2E_CHUNK,
      partitions: 0,
      producer: {
        send: async (start, n) => {
          const replies = await c.pipeline(xaddPipeline(key, start, n, nowUs()), n);
          const err = firstError(replies);
          if (err) throw new BenchError('REDIS_XADD', `XADD failed: ${err.message}`);
        },
        finish: async () => undefined,
        close: () => c.close(),
      },
      teardown: () => stopAndRemove(server),
    };
  } catch (err) {
    await client?.close();
    await server.stop();
    throw err;
  }
}

export async function jetstreamSetup(o: { natsServer: string; cleanup: Cleanup; members: number }): Promise<E2eSetup & { version: string }> {
  const server = await startNats({ cleanup: o.cleanup, binary: o.natsServer });
  const stream = 'BENCH';
  const subject = 'bench.e2e';
  const durable = 'bench-group';
  let nc: NatsConnection | undefined;
  try {
    nc = await connect({ servers: `127.0.0.1:${server.port}`, name: 'bench-producer' });
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: stream, subjects: [subject], storage: StorageType.File });
    // Acks of a batch go out after the batch, so each member may hold a batch or two unacked.
    await jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, max_ack_pending: o.members * E2E_CONSUMER_BATCH * 4 });
    const conn = nc;
    // Async publishing as the Go client's PublishAsync does it: plain publishes to the stream's
    // subject with a reply subject, whose PubAcks (or errors) arrive on one subscription and are
    // counted. nats.js 2.x has no such call; its js.publish() (a request per message) costs
    // ~75 us of client CPU per message, which would measure nats.js rather than nats-server.
    const replyTo = `${createInbox()}.ack`;
    let sent = 0;
    let acked = 0;
    let ackError: string | undefined;
    let wake: (() => void) | undefined;
    const sub = conn.subscribe(replyTo, {
      callback: (err, msg) => {
        if (err) ackError ??= err.message;
        // A PubAck is {"stream":..,"seq":..}; a refusal carries an "error" object.
        else {
          const body = Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength); // a view, no copy
          if (body.includes('"error"')) ackError ??= body.toString('utf8');
        }
        acked++;
        if (wake && (acked >= sent || ackError)) wake();
      },
    });
    return {
      version: server.version,
      task: { system: 'jetstream', jetstream: { port: server.port, stream, durable, batch: E2E_CONSUMER_BATCH, expiresMs: E2E_JETSTREAM_EXPIRES_MS } },
      serverPid: server.pid,
      maxChunk: E2E_CHUNK,
      partitions: 0,
      producer: {
        send: async (start, n) => {
          const stamp = nowUs();
          for (let i = 0; i < n; i++) conn.publish(subject, stampedPayload(start + i, stamp), { reply: replyTo });
          sent += n;
          // The window's acks are awaited together (a closed connection ends the run through its timeout).
          if (acked < sent && !ackError) await new Promise<void>((r) => (wake = r));
          wake = undefined;
          if (ackError) throw new BenchError('JETSTREAM_PUBLISH', `publish refused: ${ackError}`);
        },
        finish: async () => undefined,
        close: async () => {
          sub.unsubscribe();
          if (!conn.isClosed()) await conn.drain();
        },
      },
      teardown: () => stopAndRemove(server),
    };
  } catch (err) {
    if (nc && !nc.isClosed()) await nc.close();
    await server.stop();
    throw err;
  }
}
