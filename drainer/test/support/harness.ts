/**
 * Support for the drainer integration tests: a real redis-server and broker per test file (or test), the
 * slow-downstream simulator and drainers as child processes, orders produced with kafkajs, the
 * DLQ topic read back, and the simulator's ledger. Every test uses its own topic and downstream
 * name, so tests in one file share the processes without seeing each other's state.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Kafka, logLevel, type Admin, type Producer } from 'kafkajs';
import { Redis } from 'ioredis';
import { startBrokerProcess, startRedis, startSpillway, tempDir, waitFor, type BrokerProcess, type RedisProcess, type SpillwayProcess } from '../../../lib/src/testing/processes.ts';

export interface Stats {
  received: number;
  distinctKeys: number;
  duplicates: number;
  maxPerSecond: number;
  byStatus: Record<string, number>;
  perSecond: { second: number; count: number }[];
  keys?: string[];
}

export interface SimControl {
  rate?: number;
  burst?: number;
  latencyMs?: number;
  failStatus?: number;
  failRatio?: number;
  failKeys?: string[];
  down?: boolean;
}

export interface Simulator {
  proc: SpillwayProcess;
  url: string;
  ordersUrl: string;
  stats(withKeys?: boolean): Promise<Stats>;
  control(update: SimControl): Promise<void>;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** `spillway downstream` on a free port. */
export async function startSimulator(opts: { rate: number; burst: number }): Promise<Simulator> {
  const proc = await startSpillway(['downstream', '--port', '0', '--rate', String(opts.rate), '--burst', String(opts.burst)], {
    ready: (l) => l.msg === 'downstream listening',
  });
  const url = `http://127.0.0.1:${proc.readyLine.port as number}`;
  const call = async (method: string, p: string, body?: unknown): Promise<unknown> => {
    const res = await fetch(`${url}${p}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const value: unknown = await res.json();
    if (res.status !== 200) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(value)}`);
    return value;
  };
  return {
    proc,
    url,
    ordersUrl: `${url}/orders`,
    stats: async (withKeys = false) => (await call('GET', withKeys ? '/stats?keys=true' : '/stats')) as Stats,
    control: async (update) => {
      await call('PUT', '/control', update);
    },
    reset: async () => {
      await call('DELETE', '/control');
      await call('DELETE', '/stats');
    },
    stop: async () => {
      await proc.kill('SIGKILL');
    },
  };
}

export interface DownstreamSpec {
  name: string;
  url: string;
  topic: string;
  rate: number;
  burst?: number;
  timeoutMs?: number;
  concurrency?: number;
  windowSeconds?: number;
  retry?: { attempts?: number; backoffMs?: number; jitter?: number };
  timezone?: string;
  windows?: { from: string; to: string; rate?: number; pause?: boolean }[];
}

/** Writes a downstreams file (JSON) and returns its path. */
export function writeDrainerConfig(downstreams: DownstreamSpec[]): string {
  const file = path.join(tempDir('drainer-config'), 'downstreams.json');
  fs.writeFileSync(file, JSON.stringify({ downstreams }, null, 2));
  return file;
}

export type DrainerProcess = SpillwayProcess & { metricsPort: number; metricsUrl: string };

export async function startDrainer(opts: { config: string; redisUrl: string; kafkaBrokers: string; dlqTopic?: string; onLog?: (line: Record<string, unknown>) => void }): Promise<DrainerProcess> {
  const args = ['drainer', '--config', opts.config, '--redis-url', opts.redisUrl, '--kafka-brokers', opts.kafkaBrokers, '--metrics-port', '0'];
  if (opts.dlqTopic !== undefined) args.push('--dlq-topic', opts.dlqTopic);
  const p = await startSpillway(args, { ready: (l) => l.msg === 'drainer running', timeoutMs: 60_000, onLog: opts.onLog });
  const metricsPort = p.readyLine.metricsPort as number;
  return { ...p, metricsPort, metricsUrl: `http://127.0.0.1:${metricsPort}` };
}

export interface Order {
  orderId: string;
  sku: string;
  userId: string;
  quantity: number;
  priceCents: number;
  acceptedAt: number;
  metadata?: Record<string, unknown>;
}

export function makeOrders(prefix: string, n: number, skus = 12): Order[] {
  const run = randomUUID().slice(0, 8);
  return Array.from({ length: n }, (_, i) => ({
    orderId: `${prefix}-${run}-${i}`,
    sku: `SKU-${i % skus}`,
    userId: `u-${i}`,
    quantity: 1,
    priceCents: 1999,
    acceptedAt: Date.now(),
  }));
}

/** One broker and one redis-server for a test file, and kafkajs clients to them. */
export class Stack {
  redisProc!: RedisProcess;
  broker!: BrokerProcess;
  redis!: Redis;
  kafka!: Kafka;
  admin!: Admin;
  producer!: Producer;
  private readonly drainers: DrainerProcess[] = [];
  private readonly sims: Simulator[] = [];

  async start(opts: { redis?: Parameters<typeof startRedis>[0]; brokerArgs?: string[] } = {}): Promise<void> {
    [this.redisProc, this.broker] = await Promise.all([startRedis(opts.redis), startBrokerProcess({ args: opts.brokerArgs })]);
    this.redis = new Redis(this.redisProc.url, { maxRetriesPerRequest: null });
    this.redis.on('error', () => undefined);
    this.kafka = new Kafka({ clientId: 'drainer-test', brokers: [this.broker.bootstrap], logLevel: logLevel.NOTHING });
    this.admin = this.kafka.admin();
    await this.admin.connect();
    this.producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await this.producer.connect();
  }

  get redisUrl(): string {
    return this.redisProc.url;
  }

  async createTopic(topic: string, partitions: number): Promise<void> {
    await this.admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  }

  /** Appends orders (key = SKU), in batches, acknowledged by the broker. */
  async produce(topic: string, orders: Order[]): Promise<void> {
    for (let i = 0; i < orders.length; i += 500) {
      await this.producer.send({ topic, acks: -1, messages: orders.slice(i, i + 500).map((o) => ({ key: o.sku, value: JSON.stringify(o) })) });
    }
  }

  async simulator(opts: { rate: number; burst: number }): Promise<Simulator> {
    const s = await startSimulator(opts);
    this.sims.push(s);
    return s;
  }

  async drainer(config: string, opts: { dlqTopic?: string; onLog?: (line: Record<string, unknown>) => void } = {}): Promise<DrainerProcess> {
    const d = await startDrainer({ config, redisUrl: this.redisUrl, kafkaBrokers: this.broker.bootstrap, dlqTopic: opts.dlqTopic, onLog: opts.onLog });
    this.drainers.push(d);
    return d;
  }

  /** Records of a topic from the beginning up to its current end (keys, values, headers). */
  async readTopic(topic: string): Promise<{ key: string | null; value: string; headers: Record<string, string> }[]> {
    const ends = await this.admin.fetchTopicOffsets(topic);
    const wanted = new Map(ends.map((e) => [e.partition, Number(e.high)]));
    const out: { key: string | null; value: string; headers: Record<string, string> }[] = [];
    if ([...wanted.values()].every((h) => h === 0)) return out;
    const consumer = this.kafka.consumer({ groupId: `reader-${randomUUID()}`, maxWaitTimeInMs: 100 });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      const seen = new Map<number, number>();
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          if (Number(message.offset) >= (wanted.get(partition) ?? 0)) return;
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = Buffer.isBuffer(v) ? v.toString() : String(v);
          out.push({ key: message.key?.toString() ?? null, value: message.value?.toString() ?? '', headers });
          seen.set(partition, Number(message.offset) + 1);
        },
      });
      await waitFor(() => [...wanted].every(([p, h]) => h === 0 || (seen.get(p) ?? 0) >= h), { timeoutMs: 30_000, what: `reading ${topic} to its end` });
    } finally {
      await consumer.disconnect();
    }
    return out;
  }

  /** Jobs of a downstream's BullMQ window not finished yet (waiting — paused ones too —, active, delayed, prioritized). */
  async windowJobs(downstream: string): Promise<number> {
    const q = new Queue(`deliver-${downstream}`, { connection: this.redis, prefix: 'spw:bull' });
    try {
      const c = await q.getJobCounts('wait', 'active', 'delayed', 'prioritized');
      return Object.values(c).reduce((a, b) => a + b, 0);
    } finally {
      await q.close();
    }
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.drainers.map((d) => d.kill('SIGKILL')), ...this.sims.map((s) => s.stop())]);
    await Promise.allSettled([this.producer?.disconnect(), this.admin?.disconnect()]);
    this.redis?.disconnect();
    await Promise.allSettled([this.broker?.kill('SIGKILL'), this.redisProc?.stop('SIGKILL')]);
    for (const dir of [this.broker?.dataDir, this.redisProc?.dir]) if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The value of one sample (summed over matching label sets) in Prometheus text. */
export async function scrape(metricsUrl: string): Promise<string> {
  const res = await fetch(`${metricsUrl}/metrics`);
  return res.text();
}

export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    found = true;
  }
  return found ? sum : NaN;
}

/**
 * Worst event-loop delay (p99 and max, ms) among drainer processes since the previous scrape:
 * prom-client's monitor (10 ms resolution) is reset by every scrape of /metrics.
 */
export async function eventLoopDelay(drainers: DrainerProcess[]): Promise<{ p99Ms: number; maxMs: number }> {
  const all = await Promise.all(
    drainers.map(async (d) => {
      const m = await scrape(d.metricsUrl);
      return { p99: metricValue(m, 'spillway_drainer_nodejs_eventloop_lag_p99_seconds') * 1000, max: metricValue(m, 'spillway_drainer_nodejs_eventloop_lag_max_seconds') * 1000 };
    }),
  );
  return { p99Ms: Math.max(0, ...all.map((a) => a.p99)), maxMs: Math.max(0, ...all.map((a) => a.max)) };
}

/** A drainer whose event loop ran at most this late (p99) kept its timers: timing bounds apply as stated. */
export const ON_TIME_P99_MS = 20;

/** The machine's CPU counters (all cores) from /proc/stat: busy and total jiffies. */
function cpuTimes(): { busy: number; total: number } | null {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0); // idle + iowait
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

/**
 * Share of the machine's CPU in use between start() and busy() (0..1; null without /proc).
 * The drainers' event loops can run on time while the processes they depend on (Redis, the
 * broker, the simulator) are starved by other work: a saturated machine says so.
 */
export function machineLoad(): { busy(): number | null } {
  const start = cpuTimes();
  return {
    busy: () => {
      const end = cpuTimes();
      if (start === null || end === null || end.total <= start.total) return null;
      return (end.busy - start.busy) / (end.total - start.total);
    },
  };
}

/** Above this share of the machine in use, rate lower bounds are not asserted (see rate.test.ts). */
export const SATURATED_SHARE = 0.85;

/**
 * Slack for per-second counts taken at the downstream when the machine is overloaded: a delivery
 * the limiter admitted in one second reaches the downstream in the next if the processes run late,
 * so a stall of d seconds can move up to rate·d deliveries into a neighbouring second. 0 when the
 * drainers were never late beyond the monitor's 10 ms resolution.
 */
export function jitterSlack(rate: number, maxDelayMs: number): number {
  return Math.floor((rate * Math.max(0, maxDelayMs - 10)) / 1000);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
