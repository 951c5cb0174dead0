/**
 * The buffer seen from the drainer, behind a small interface: a consumer-group consumer that
 * hands over batches per partition and commits explicitly, a producer for the dead-letter
 * topic, and group lag. kafkajs (in maintenance mode) stays inside this file.
 */
import { Kafka, logLevel as kafkaLogLevel, type Consumer, type Producer, type Admin, type SASLOptions } from 'kafkajs';

export interface LogRecord {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  value: string;
  timestamp: number;
}

export interface PartitionBatch {
  topic: string;
  partition: number;
  records: LogRecord[];
  /** The partition's log end offset when the batch was fetched: records past the batch exist if it is beyond the last one. */
  highWatermark: number;
  /** Marks records as taken so the consumer does not fetch them again (not a commit). */
  taken(offset: number): void;
  heartbeat(): Promise<void>;
  isRunning(): boolean;
}

export interface LogConsumer {
  run(onBatch: (b: PartitionBatch) => Promise<void>, onAssignment: (partitions: number[]) => void): Promise<void>;
  /** Commits `nextOffset` (the first offset not yet done) for a partition. */
  commit(topic: string, partition: number, nextOffset: number): Promise<void>;
  /** Fetches a partition again from `offset` (no commit); the batch in hand becomes stale. */
  seek(topic: string, partition: number, offset: number): void;
  stop(): Promise<void>;
}

export interface DeadLetter {
  key: string | null;
  value: string;
  headers: Record<string, string>;
}

export interface PartitionLag {
  partition: number;
  end: number;
  committed: number;
  lag: number;
}

export interface LogClient {
  consumer(groupId: string, topic: string): LogConsumer;
  deadLetter(topic: string, record: DeadLetter): Promise<void>;
  lag(groupId: string, topic: string): Promise<PartitionLag[]>;
  close(): Promise<void>;
}

/**
 * Fetch sizes of the pump's consumer: the window holds at most 10,000 orders (about 3 MB), so a
 * fetch of kafkajs's defaults (10 MB, 1 MB per partition) would mostly wait in the heap for room
 * in it. Smaller fetches keep the drainer's memory independent of the backlog and small. kafkajs
 * also decodes a whole fetch answer in one go, on the event loop the workers deliver from: with
 * 2 MB fetches (about 14,000 orders) that held the loop for 25-40 ms each time the pump fetched,
 * and at 5,000/s each such stall cost its second 2-5 % of the rate (19 stalls over 25 ms in a
 * 60-s run). At 512 KB (64 KB per partition) one was left, and throughput at unlimited rates did
 * not drop.
 */
const FETCH_MAX_BYTES = 512 * 1024;
const FETCH_MAX_BYTES_PER_PARTITION = 64 * 1024;

export class KafkajsLogClient implements LogClient {
  private readonly kafka: Kafka;
  private producer: Producer | null = null;
  private producerReady: Promise<Producer> | null = null;
  private admin: Admin | null = null;
  private readonly consumers: Consumer[] = [];

  constructor(brokers: string[], clientId: string, sasl?: SASLOptions) {
    this.kafka = new Kafka({ clientId, brokers, sasl, logLevel: kafkaLogLevel.NOTHING, retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 5000 } });
  }

  consumer(groupId: string, topic: string): LogConsumer {
    const c = this.kafka.consumer({ groupId, sessionTimeout: 30_000, heartbeatInterval: 1000, maxWaitTimeInMs: 500, allowAutoTopicCreation: false, maxBytes: FETCH_MAX_BYTES, maxBytesPerPartition: FETCH_MAX_BYTES_PER_PARTITION });
    this.consumers.push(c);
    return {
      run: async (onBatch, onAssignment) => {
        c.on(c.events.GROUP_JOIN, (e) => {
          const assigned = (e.payload.memberAssignment as Record<string, number[]>)[topic] ?? [];
          onAssignment(assigned);
        });
        await c.connect();
        await c.subscribe({ topic, fromBeginning: true });
        await c.run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
            if (isStale()) return;
            await onBatch({
              topic: batch.topic,
              partition: batch.partition,
              records: batch.messages.map((m) => ({
                topic: batch.topic,
                partition: batch.partition,
                offset: Number(m.offset),
                key: m.key?.toString() ?? null,
                value: m.value?.toString() ?? '',
                timestamp: Number(m.timestamp),
              })),
              highWatermark: Number(batch.highWatermark),
              taken: (offset) => resolveOffset(String(offset)),
              heartbeat,
              isRunning: () => isRunning() && !isStale(),
            });
          },
        });
      },
      commit: async (t, partition, nextOffset) => {
        await c.commitOffsets([{ topic: t, partition, offset: String(nextOffset) }]);
      },
      seek: (t, partition, offset) => {
        c.seek({ topic: t, partition, offset: String(offset) });
      },
      stop: async () => {
        await c.disconnect();
      },
    };
  }

  private async getProducer(): Promise<Producer> {
    if (this.producer) return this.producer;
    this.producerReady ??= (async () => {
      const p = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await p.connect();
      this.producer = p;
      return p;
    })();
    return this.producerReady;
  }

  async deadLetter(topic: string, record: DeadLetter): Promise<void> {
    const p = await this.getProducer();
    await p.send({ topic, acks: -1, messages: [{ key: record.key, value: record.value, headers: record.headers }] });
  }

  async lag(groupId: string, topic: string): Promise<PartitionLag[]> {
    if (!this.admin) {
      this.admin = this.kafka.admin();
      await this.admin.connect();
    }
    const [ends, committed] = await Promise.all([this.admin.fetchTopicOffsets(topic), this.admin.fetchOffsets({ groupId, topics: [topic] })]);
    const byPartition = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
    return ends.map((e) => {
      const end = Number(e.high);
      const low = Number(e.low);
      const c = byPartition.get(e.partition) ?? -1;
      const from = c < 0 ? low : Math.max(c, low);
      return { partition: e.partition, end, committed: c, lag: Math.max(0, end - from) };
    });
  }

  async ensureTopic(topic: string, partitions: number): Promise<void> {
    if (!this.admin) {
      this.admin = this.kafka.admin();
      await this.admin.connect();
    }
    await this.admin.createTopics({ topics: [{ topic, numPartitions: partitions }] });
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.consumers.map((c) => c.disconnect()));
    await this.producer?.disconnect().catch(() => undefined);
    await this.admin?.disconnect().catch(() => undefined);
  }
}
