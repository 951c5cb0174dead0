/**
 * kafkajs produce: topic creation through the admin client, and producing a range of records
 * from several producer instances (one connection each), each keeping a few send() calls in
 * flight. kafkajs is what Spillway itself uses, so this is the figure the gateway can expect.
 * Its JS encoding (and CRC-32C) is CPU-heavy and runs in the producing process, which is why
 * the bench can spread producers over several processes (see kafkajs-worker.ts).
 *
 * Every send() is one batch of `batchSize` keyless records with acks=-1; kafkajs's default
 * partitioner spreads keyless records round-robin, so one send becomes one Produce request
 * carrying a batch for each of the topic's partitions. Its duration is the produce latency.
 */
import { Kafka, Partitioners, logLevel, type Message, type Producer } from 'kafkajs';
import { recordPayload } from './records.ts';

function client(bootstrap: string, clientId: string): Kafka {
  return new Kafka({ clientId, brokers: [bootstrap], logLevel: logLevel.ERROR, retry: { retries: 0 } });
}

export async function createTopics(bootstrap: string, topics: readonly string[], partitions: number): Promise<void> {
  const admin = client(bootstrap, 'spillway-bench-admin').admin();
  await admin.connect();
  try {
    const created = await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 })), waitForLeaders: true });
    if (!created) throw new Error(`createTopics reported no topic created for ${topics.join(', ')}`);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Deletes topics once a phase is done with them, so that the broker, like the reference servers
 * (a fresh server and store per run), does not carry every earlier run's data in the page cache
 * (see "Memory between runs" in bench/broker.ts).
 */
export async function deleteTopics(bootstrap: string, topics: readonly string[]): Promise<void> {
  const admin = client(bootstrap, 'spillway-bench-admin').admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics: [...topics] });
  } finally {
    await admin.disconnect();
  }
}

export async function connectProducers(bootstrap: string, count: number): Promise<Producer[]> {
  const kafka = client(bootstrap, 'spillway-bench-producer');
  // Retries off: a retried send could duplicate records and hide a broker error; read-back checks for both.
  const producers = Array.from({ length: count }, () => kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false, retry: { retries: 0 } }));
  await Promise.all(producers.map((p) => p.connect()));
  return producers;
}

export async function disconnectProducers(producers: readonly Producer[]): Promise<void> {
  await Promise.allSettled(producers.map((p) => p.disconnect()));
}

export interface ProduceRange {
  topic: string;
  /** First record index (inclusive) and end (exclusive). */
  start: number;
  end: number;
  inFlightPerProducer: number;
  batchSize: number;
}

export interface ProduceRangeResult {
  ms: number;
  /** Duration of each send(), in completion order. */
  latenciesMs: number[];
}

/**
 * Records shaped the way the gateway's publisher hands them to kafkajs (gateway/src/publisher.ts):
 * kafkajs encodes each record as Record({ ...message, offsetDelta, timestampDelta }), and V8
 * spends about 2 µs on a spread followed by new properties, but almost nothing when the copied
 * object has them already. kafkajs overwrites both; the bytes sent are the same.
 */
function batch(start: number, size: number): Message[] {
  const messages: Message[] = new Array<Message>(size);
  for (let i = 0; i < size; i++) messages[i] = { value: recordPayload(start + i), offsetDelta: 0, timestampDelta: 0 } as Message;
  return messages;
}

export async function produceRange(producers: readonly Producer[], r: ProduceRange): Promise<ProduceRangeResult> {
  const latenciesMs: number[] = [];
  let next = r.start;
  // Single-threaded: claiming `next` and advancing it happen without an await in between.
  const lane = async (producer: Producer) => {
    while (next < r.end) {
      const start = next;
      const size = Math.min(r.batchSize, r.end - start);
      next += size;
      const messages = batch(start, size);
      const t0 = performance.now();
      await producer.send({ topic: r.topic, acks: -1, messages });
      latenciesMs.push(performance.now() - t0);
    }
  };
  const started = performance.now();
  await Promise.all(producers.flatMap((p) => Array.from({ length: r.inFlightPerProducer }, () => lane(p))));
  return { ms: performance.now() - started, latenciesMs };
}
