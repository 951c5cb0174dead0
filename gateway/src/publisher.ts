/**
 * The buffer behind a small interface: append records durably (acks=-1, idempotent producer)
 * and learn where they landed. kafkajs (in maintenance mode) stays inside KafkajsPublisher.
 *
 * Coalescing: while one produce request is in flight, new records queue; the next request
 * carries everything queued (up to maxBatch), so throughput grows with concurrency while each
 * record still waits for one fsync'd round trip. Partitions are chosen here (murmur2 of the
 * key, as Kafka's Java and kafkajs default partitioners do) so each record's offset is known
 * from its partition's base offset.
 *
 * After a failed send the producer is replaced (new producer id) before the next one: kafkajs
 * rolls its sequence numbers back when a request fails, but the broker may have appended that
 * batch before the answer was lost. The next, different batch would then reuse those sequence
 * numbers and be taken for a duplicate (answered with the old batch's offsets: a 202 for an
 * order that is not in the log) or refused with OUT_OF_ORDER_SEQUENCE_NUMBER for good.
 *
 * Every publish() is answered within requestTimeoutMs (the gateway's append timeout), by one
 * deadline timer for the whole publisher rather than one per record.
 */
import { createRequire } from 'node:module';
import { Kafka, logLevel as kafkaLogLevel, type Admin, type Producer, type SASLOptions } from 'kafkajs';
import type { Logger } from '../../lib/src/logger.ts';
import { SpillwayError } from '../../lib/src/errors.ts';

export interface OutgoingRecord {
  topic: string;
  key: string | null;
  value: string;
  headers?: Record<string, string>;
}

export interface Placement {
  partition: number;
  offset: number;
}

export interface Publisher {
  /** Resolves once the record is durable in the buffer; rejects with BUFFER_UNAVAILABLE otherwise,
   * at the latest when the append timeout has passed (the record may then still land). */
  publish(record: OutgoingRecord): Promise<Placement>;
  /** Creates the topic when missing. */
  ensureTopic(topic: string, partitions: number): Promise<void>;
  ready(): boolean;
  /** Records handed to the broker per produce request (for metrics). */
  onBatch?: (records: number) => void;
  close(): Promise<void>;
}

const require = createRequire(import.meta.url);
const murmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: string | Buffer) => number;

/** Kafka's default partitioner for keyed records: positive murmur2 modulo the partition count. */
export function partitionForKey(key: string, partitions: number): number {
  return (murmur2(key) & 0x7fffffff) % partitions;
}

interface Queued {
  record: OutgoingRecord;
  partition: number;
  resolve: (p: Placement) => void;
  reject: (e: Error) => void;
  /** Date.now() after which the record is answered with a timeout. */
  deadline: number;
  settled: boolean;
}

/** Keys whose partition is remembered per partition count (the cache is emptied beyond this). */
const KEY_CACHE_MAX = 100_000;

export interface KafkajsPublisherOptions {
  brokers: string[];
  clientId: string;
  lingerMs: number;
  maxBatch: number;
  requestTimeoutMs: number;
  /** SASL credentials (see kafkaSasl); undefined = plaintext without authentication. */
  sasl?: SASLOptions;
  log: Logger;
}

export class KafkajsPublisher implements Publisher {
  private readonly kafka: Kafka;
  private producer: Producer;
  /** Set when a send failed: the producer's sequence state can no longer be trusted. */
  private producerSuspect = false;
  private readonly admin: Admin;
  private connected = false;
  private queue: Queued[] = [];
  private sending = false;
  private closed = false;
  private idle: (() => void)[] = [];
  private readonly partitionCounts = new Map<string, number>();
  private rr = 0;
  private readonly keyPartitions = new Map<number, Map<string, number>>();
  /** Every record not yet answered, in publish order (settled ones are skipped lazily). */
  private unsettled: Queued[] = [];
  private unsettledHead = 0;
  private deadlineTimer: NodeJS.Timeout | undefined;
  onBatch?: (records: number) => void;

  constructor(private readonly opts: KafkajsPublisherOptions) {
    this.kafka = new Kafka({
      clientId: opts.clientId,
      brokers: opts.brokers,
      logLevel: kafkaLogLevel.NOTHING,
      sasl: opts.sasl,
      requestTimeout: opts.requestTimeoutMs,
      connectionTimeout: Math.min(3000, opts.requestTimeoutMs),
      // A bounded retry budget: the caller's answer must not outlive its append timeout by much.
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
    });
    this.producer = this.newProducer();
    this.admin = this.kafka.admin();
  }

  private newProducer(): Producer {
    const producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
    producer.on(producer.events.DISCONNECT, () => {
      if (producer === this.producer) this.connected = false;
    });
    producer.on(producer.events.CONNECT, () => {
      if (producer === this.producer) this.connected = true;
    });
    return producer;
  }

  /** Replaces a producer whose last send failed by one with a fresh producer id. */
  private async replaceProducer(): Promise<void> {
    const old = this.producer;
    this.producer = this.newProducer();
    this.connected = false;
    await old.disconnect().catch(() => undefined);
    await this.producer.connect();
    this.connected = true;
    this.producerSuspect = false;
  }

  async connect(): Promise<void> {
    await this.producer.connect();
    await this.admin.connect();
    this.connected = true;
  }

  ready(): boolean {
    return this.connected && !this.closed;
  }

  async ensureTopic(topic: string, partitions: number): Promise<void> {
    await this.admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
    const md = await this.admin.fetchTopicMetadata({ topics: [topic] });
    this.partitionCounts.set(topic, md.topics[0].partitions.length);
  }

  private async partitionsOf(topic: string): Promise<number> {
    const known = this.partitionCounts.get(topic);
    if (known !== undefined) return known;
    const md = await this.admin.fetchTopicMetadata({ topics: [topic] });
    const n = md.topics[0].partitions.length;
    this.partitionCounts.set(topic, n);
    return n;
  }

  /** murmur2 once per key and partition count, not once per record (orders are keyed by SKU). */
  private partitionOf(key: string | null, n: number): number {
    if (key === null) return this.rr++ % n;
    let byKey = this.keyPartitions.get(n);
    if (byKey === undefined) this.keyPartitions.set(n, (byKey = new Map()));
    let p = byKey.get(key);
    if (p === undefined) {
      if (byKey.size >= KEY_CACHE_MAX) byKey.clear();
      p = partitionForKey(key, n);
      byKey.set(key, p);
    }
    return p;
  }

  publish(record: OutgoingRecord): Promise<Placement> {
    if (this.closed) return Promise.reject(new SpillwayError('BUFFER_UNAVAILABLE', 'the publisher is shutting down', true));
    const n = this.partitionCounts.get(record.topic);
    if (n !== undefined) return this.enqueue(record, this.partitionOf(record.key, n));
    // A topic seen for the first time: its metadata first, within the append timeout too.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SpillwayError('BUFFER_UNAVAILABLE', `cannot read metadata of ${record.topic}: timed out after ${this.opts.requestTimeoutMs} ms`, true)), this.opts.requestTimeoutMs);
    });
    const known = this.partitionsOf(record.topic).catch((err: unknown) => {
      if ((err as { type?: string }).type === 'UNKNOWN_TOPIC_OR_PARTITION') throw new SpillwayError('UNKNOWN_TOPIC', `topic ${record.topic} does not exist`, false);
      throw new SpillwayError('BUFFER_UNAVAILABLE', `cannot read metadata of ${record.topic}: ${(err as Error).message}`, true);
    });
    return Promise.race([known, timeout])
      .finally(() => clearTimeout(timer))
      .then((count) => this.enqueue(record, this.partitionOf(record.key, count)));
  }

  private enqueue(record: OutgoingRecord, partition: number): Promise<Placement> {
    return new Promise<Placement>((resolve, reject) => {
      const deadline = Date.now() + this.opts.requestTimeoutMs;
      const q: Queued = { record, partition, resolve, reject, deadline, settled: false };
      this.queue.push(q);
      this.unsettled.push(q);
      if (this.deadlineTimer === undefined) this.armDeadline(deadline - Date.now());
      this.kick();
    });
  }

  /**
   * The append timeout: a record not acknowledged requestTimeoutMs after publish() is rejected
   * (BUFFER_UNAVAILABLE, ambiguous: it may still land), whether it waits in the queue or in a
   * produce request that kafkajs is still retrying. One timer for the whole publisher: records are
   * published and acknowledged in order, so the oldest unsettled one is due first.
   */
  private armDeadline(ms: number): void {
    this.deadlineTimer = setTimeout(() => this.sweepDeadlines(), Math.max(1, ms));
    this.deadlineTimer.unref();
  }

  private sweepDeadlines(): void {
    this.deadlineTimer = undefined;
    const now = Date.now();
    const u = this.unsettled;
    let i = this.unsettledHead;
    let timedOut: SpillwayError | undefined;
    for (; i < u.length; i++) {
      const q = u[i];
      if (q.settled) continue;
      if (q.deadline > now) break;
      timedOut ??= new SpillwayError('BUFFER_UNAVAILABLE', `append timed out after ${this.opts.requestTimeoutMs} ms`, true, { ambiguous: true });
      q.settled = true;
      q.reject(timedOut);
    }
    this.dropSettled(i);
    if (this.unsettledHead < this.unsettled.length) this.armDeadline(this.unsettled[this.unsettledHead].deadline - now);
  }

  /** Forgets settled records at the head of `unsettled` (from `from`, where a sweep stopped). */
  private dropSettled(from = this.unsettledHead): void {
    const u = this.unsettled;
    let i = from;
    while (i < u.length && u[i].settled) i++;
    if (i >= u.length) {
      this.unsettled = [];
      this.unsettledHead = 0;
    } else if (i > 1024 && i * 2 > u.length) {
      this.unsettled = u.slice(i);
      this.unsettledHead = 0;
    } else this.unsettledHead = i;
  }

  private settle(q: Queued, placement: Placement | null, err: Error | null): void {
    if (q.settled) return;
    q.settled = true;
    if (placement !== null) q.resolve(placement);
    else q.reject(err as Error);
  }

  private kick(): void {
    if (this.sending || this.queue.length === 0) return;
    this.sending = true;
    const go = () => void this.sendLoop();
    if (this.opts.lingerMs > 0) setTimeout(go, this.opts.lingerMs);
    else setImmediate(go);
  }

  private async sendLoop(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        // Records already answered with a timeout while they queued are not sent at all.
        const batch = this.queue.splice(0, this.opts.maxBatch).filter((q) => !q.settled);
        if (batch.length > 0) await this.sendBatch(batch);
      }
    } finally {
      this.sending = false;
      if (this.queue.length > 0) this.kick();
      else for (const w of this.idle.splice(0)) w();
    }
  }

  private async sendBatch(batch: Queued[]): Promise<void> {
    const byTopic = new Map<string, Queued[]>();
    for (const q of batch) {
      const list = byTopic.get(q.record.topic);
      if (list) list.push(q);
      else byTopic.set(q.record.topic, [q]);
    }
    if (this.producerSuspect) {
      try {
        await this.replaceProducer();
      } catch (err) {
        // Nothing of this batch was sent: not ambiguous.
        const e = new SpillwayError('BUFFER_UNAVAILABLE', `cannot reconnect to the buffer: ${(err as Error).message}`, true);
        for (const q of batch) this.settle(q, null, e);
        this.dropSettled();
        return;
      }
    }
    this.onBatch?.(batch.length);
    try {
      const results = await this.producer.sendBatch({
        acks: -1,
        timeout: this.opts.requestTimeoutMs,
        topicMessages: [...byTopic].map(([topic, qs]) => ({
          topic,
          // offsetDelta and timestampDelta are kafkajs's own per-record fields: it encodes each
          // record as Record({ ...message, offsetDelta, timestampDelta }), and V8 (node 20) spends
          // about 2 µs on a spread followed by new properties, but almost nothing when the copied
          // object has them already. kafkajs overwrites both; the records are the same.
          messages: qs.map((q) => ({ key: q.record.key, value: q.record.value, partition: q.partition, headers: q.record.headers, offsetDelta: 0, timestampDelta: 0 })),
        })),
      });
      // Per topic, per partition: the next offset of this batch's records there (base offset
      // first; records of one partition are appended in batch order).
      const next = new Map<string, number[]>();
      for (const r of results) {
        let offsets = next.get(r.topicName);
        if (offsets === undefined) next.set(r.topicName, (offsets = []));
        offsets[r.partition] = Number(r.baseOffset);
      }
      for (const q of batch) {
        const offsets = next.get(q.record.topic);
        const offset = offsets?.[q.partition];
        if (offsets === undefined || offset === undefined) this.settle(q, null, new SpillwayError('BUFFER_UNAVAILABLE', 'the broker did not acknowledge this partition', true));
        else {
          offsets[q.partition] = offset + 1;
          this.settle(q, { partition: q.partition, offset }, null);
        }
      }
      this.dropSettled();
    } catch (err) {
      this.producerSuspect = true;
      this.opts.log.warn({ err: (err as Error).message, records: batch.length }, 'append failed');
      const e = new SpillwayError('BUFFER_UNAVAILABLE', `append failed: ${(err as Error).message}`, true, { ambiguous: true });
      for (const q of batch) this.settle(q, null, e);
      this.dropSettled();
    }
  }

  /** Stops taking records, finishes what is queued or in flight, then disconnects. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.sending || this.queue.length > 0) await new Promise<void>((r) => this.idle.push(r));
    await this.producer.disconnect().catch(() => undefined);
    await this.admin.disconnect().catch(() => undefined);
  }
}
