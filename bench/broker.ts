/**
 * `npm run bench:broker`: durable-append and read-back throughput of the buffer broker, and
 * end-to-end throughput and latency through consumer groups, side by side with Redis Streams and
 * NATS JetStream measured in the same run on the same machine and disk.
 *
 * Phases (BENCH_PHASES, comma list; default all, always run in this order, except that the passes
 * of the end-to-end phases group, redis-group and jetstream are interleaved, see interleaveE2e):
 * - redis: the Redis reference, redis-server with appendonly yes and appendfsync always. XADD of
 *   the same payloads pipelined 1,000 per round trip (each awaited), then XRANGE back 1,000 per
 *   request, with ioredis (the project's Redis client; bench/lib/redis-ioredis.ts) on a fresh
 *   server: these are the figures every ratio and target is taken against. The same again with
 *   a minimal raw-RESP pipelining client (bench/lib/resp.ts) on another fresh server: printed as
 *   info rows, the best case a client could get out of Redis.
 * - kcat: kcat (librdkafka, C) produces N records of 300 bytes with acks=-1 to a 12-partition
 *   topic on a broker running with --fsync always, then reads them all back three times. A C
 *   client is cheap, so these figures are meant to be the broker's own limits. Wall time is
 *   spawn-to-exit: kcat -P exits only once every message is acknowledged, i.e. durable; kcat -C
 *   -e exits at the end of every partition (found by one empty poll of fetch.wait.max.ms, tuned
 *   to 5 ms, see KCAT_CONSUME_SETTINGS); every reader runs with its stdout block-buffered and
 *   glibc's malloc growing its heap in large steps (KCAT_READER_STDBUF, KCAT_READER_ENV).
 *   Read-backs start at offset 0 rather than `beginning`, which can cost a fixed 500 ms inside
 *   librdkafka (see KCAT_START_OFFSET): one kcat -e over all partitions; one kcat -c N (exit at
 *   the N-th record, to show the end-detection cost); and one kcat process per partition, all at
 *   once (-p P -e, started by one sh and timed from its start to the last reader's exit). A
 *   single kcat turned out to be the limit of its read-back (its two threads hand
 *   records over at about 1M/s here while the broker uses a third of a core), so the target row
 *   is the per-partition one, where the broker is what limits; the single-process rows are
 *   printed beside it as info.
 * - kafkajs: kafkajs (what Spillway itself uses) produces another N records: several producers,
 *   several send() calls of 1,000 records in flight each, in two processes by default: kafkajs
 *   encodes in JS at about 15 us of CPU per record, so one process tops out near one core (about
 *   60,000-140,000 records/s here, depending on the machine's other load); two, one per core, are
 *   how several gateways would produce (BENCH_KAFKAJS_PROCESSES=1 measures one). Per-send latency
 *   gives the produce p50/p99. That topic is read back with kcat.
 * - group: end to end through a consumer group (bench/lib/e2e.ts): the bench produces N records
 *   (acks=-1, fsync on) while a 3-member kafkajs group (eachBatch, offsets committed after each
 *   batch) consumes them; then again with a producer paced at half the end-to-end rate just
 *   measured. Each record carries its send time, so the consumers measure produce-to-consume
 *   latency per record. The producer (BENCH_GROUP_PRODUCER) is by default the bench's own Kafka
 *   wire producer (bench/lib/kafka-wire-producer.ts: Produce v7, acks=-1, one record batch of up
 *   to 1,000 records per request, 5 requests in flight), the counterpart of the raw-RESP XADD
 *   pipelines of the Redis reference; `kcat` selects kcat -P fed through a pipe, the producer
 *   before. The consumers are the limit of this phase, and on 2 cores every producer's CPU is
 *   theirs to lose: kafkajs would take a core by itself, and kcat takes 0.6-0.7 cores while it
 *   produces (~0.9 us per record: librdkafka's per-message allocation, locks, wake-ups and
 *   delivery reports), against 0.2 for the wire producer. Measured with the same broker, side by
 *   side: 471-511k records/s end to end with the wire producer, 423-436k/s with kcat.
 *   Memory between runs: each end-to-end topic is deleted once its run is verified (and the kcat
 *   and kafkajs topics once their read-backs are done), and each reference server's store once
 *   the server has stopped (every reference run starts a fresh server). On this VM a page the
 *   guest has not touched lately costs a host fault (~11 us against ~1.4 us for a recently freed
 *   one, measured by touching 16 GB), so a broker that kept
 *   every earlier run's 400 MB in its page cache ran its later passes on such pages: its CPU per
 *   record doubled (0.7 -> 1.3 us, all of it on the main thread) from the third or fourth pass on.
 *   Commits (BENCH_GROUP_COMMIT): by default each member commits after every batch without
 *   awaiting the answer before its next fetch (at most one commit in flight per member; offsets
 *   of batches handled meanwhile go in the next one), as a Java consumer's commitAsync does and
 *   as the Redis (XACK pipelined ahead of the next read) and JetStream (acks not awaited)
 *   consumers here do. Each commit is still fsync'd before the broker answers it, so a crashed
 *   member redelivers at most the batches after its last answered commit. kafkajs's own
 *   eachBatch auto-commit (BENCH_GROUP_COMMIT=awaited, the default before) awaits every commit
 *   before the member's next batch: a member's 4 partitions then take 4 serial commit round
 *   trips per fetch, which held records back (measured at 40,000/s on a busy machine: p99 of
 *   fetch-answer -> handler 265-300 ms awaited vs 7-10 ms async; end-to-end p99 0.75-1.45 s vs
 *   0.1-0.5 s).
 * - redis-group: the same through Redis Streams: XADD pipelined 1,000 at a time (raw RESP
 *   client, appendfsync always; ioredis would make the producer, not Redis, the limit) while 3
 *   consumers (ioredis) XREADGROUP COUNT 1000 BLOCK 100 and XACK each batch; full, then half.
 * - jetstream: the same through NATS JetStream: a private nats-server -js on a free port, a
 *   file-storage stream, async publishes (1,000 in flight, acks awaited per window; done as Go's
 *   PublishAsync does, since nats.js's js.publish() would be the limit), a durable pull consumer
 *   that 3 members fetch from 1,000 at a time, acking each batch. nats-server 2.9 does not fsync
 *   per message, so its acks promise less than Spillway's and Redis's.
 * In every end-to-end phase the 3 members share one consumer process by default
 * (BENCH_GROUP_CONSUMER_PROCESSES), apart from the bench process that produces, so on 2 cores
 * the consumers get at most one and the server keeps the other. Before the clock starts, the bench
 * produces BENCH_GROUP_WARMUP warm-up records into the run's own topic or stream, through the same
 * producer at the run's own pace, and the members consume them like the measured ones (not counted; see
 * group-worker.ts), so a run measures consumers in their running state, not V8 compiling the
 * client library or the consumer's heap growing to its working size. Half-speed runs produce
 * min(N, rate x BENCH_HALF_SPEED_MAX_S) records, so a slow reference cannot stretch the run.
 * The broker's RSS is sampled every 100 ms for its whole life (plus the kernel's VmHWM); CPU use
 * of server (all threads), clients and machine is printed per phase, to show which side was the
 * limit, with the machine's steal time (bench/lib/cpu.ts) apart, to show when the host was.
 * Every read-back checks that each record index came back exactly once (across the whole group
 * in end-to-end phases), and after each produce the broker's log end offsets must add up to
 * what was produced. MB = 10^6 payload bytes.
 *
 * Settings (env): BENCH_RECORDS (default 1000000), BENCH_PHASES (all: redis,kcat,kafkajs,group,
 * redis-group,jetstream), BENCH_KAFKAJS_PROCESSES (2), BENCH_KAFKAJS_PRODUCERS (4 per process),
 * BENCH_KAFKAJS_IN_FLIGHT (2 per producer), BENCH_KAFKAJS_BATCH (1000), BENCH_REDIS_PIPELINE
 * (1000), BENCH_GROUP_MEMBERS (3), BENCH_GROUP_CONSUMER_PROCESSES (1), BENCH_CONSUMER_NODE_FLAGS (node flags of the end-to-end
 * consumer processes of every system, e.g. --max-semi-space-size=32), BENCH_GROUP_WARMUP (200000:
 * warm-up records produced and consumed before each end-to-end run's clock starts; 0 = none),
 * BENCH_GROUP_COMMIT (async: after every batch, not awaited; awaited: kafkajs's auto-commit after
 * every batch; n: every n ms, not awaited),
 * BENCH_GROUP_PARTITIONS_CONCURRENTLY (1: kafkajs partitionsConsumedConcurrently per member),
 * BENCH_GROUP_PRODUCER (wire: the bench's Kafka wire producer; kcat: kcat -P through a pipe),
 * BENCH_READ_PASSES (3: passes of the 12-reader read-back and of each XRANGE reference read; the
 * median pass is reported), BENCH_E2E_PASSES (5: passes of each system's full-speed end-to-end run;
 * the median pass is reported and half speed is paced from it; 5 because one run's passes of the
 * same system spread by up to a third on this VM, 192-299k/s in one run), BENCH_HALF_SPEED_PASSES (3: passes of
 * each system's half-speed run, all paced at the same rate; the pass with the median p99 is
 * reported), BENCH_HALF_SPEED_MAX_S (30), BENCH_PHASE_TIMEOUT_S (900), BENCH_KCAT
 * (kcat), BENCH_REDIS_SERVER (/usr/bin/redis-server), BENCH_NATS_SERVER (/usr/sbin/nats-server), BENCH_WORKER_PROF (a directory:
 * the end-to-end consumer processes write V8 CPU profiles there, --cpu-prof), BENCH_BROKER_PROF (a
 * directory: the broker writes its V8 CPU profile there when it exits).
 * Exit status: 0 when every selected phase ran and every read-back was exact (targets are
 * reported, not enforced), 1 otherwise. Results also go to bench/out/broker-<timestamp>.json.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuMark, cpuUse, type CpuUse } from './lib/cpu.ts';
import { runEndToEnd, type E2eOptions, type E2eRun, type E2eSetup } from './lib/e2e.ts';
import { type GroupCommit, type SpillwayProducer, E2E_CHUNK, E2E_CONSUMER_BATCH, E2E_JETSTREAM_EXPIRES_MS, E2E_KAFKA_MAX_WAIT_MS, E2E_PARTITIONS, E2E_REDIS_BLOCK_MS, jetstreamSetup, redisGroupSetup, spillwaySetup } from './lib/e2e-systems.ts';
import { SPLIT_EVERY } from './lib/group-protocol.ts';
import { kafkajsProduceFleet } from './lib/kafkajs-fleet.ts';
import { createTopics, deleteTopics } from './lib/kafkajs-produce.ts';
import { KCAT_CONSUME_SETTINGS, KCAT_PRODUCE_SETTINGS, KCAT_START_OFFSET, kcatConsume, kcatConsumePartitions, kcatProduce, kcatReaderWrapping, verifyReadBack } from './lib/kcat.ts';
import { BenchError, Cleanup, makeTempDir, startBroker, startRedis, stopAndRemove, type BrokerProcess } from './lib/procs.ts';
import { phaseMetrics, scrape, sumOf, type PhaseMetrics, type Sample } from './lib/prom.ts';
import { RECORD_BYTES, writeLinesFile, type ReadBackSummary } from './lib/records.ts';
import { connectIoredis, ioredisAppend, ioredisReadBack, ioredisServerVersion } from './lib/redis-ioredis.ts';
import { redisAppend, redisReadBack, type RedisAppendResult, type RedisReadResult } from './lib/redis-streams.ts';
import { comparisonTable, fmt, latency, limitRow, medianBy, missingRow, ratioRow, throughput, writeJson, type Comparison, type Latency, type Throughput } from './lib/report.ts';
import { RespClient } from './lib/resp.ts';
import { readRss, RssSampler } from './lib/rss.ts';

const PARTITIONS = 12;
const TARGETS = {
  kcatProduceVsXadd: 4,
  kcatReadVsXrange: 5,
  kafkajsProduceVsXadd: 2,
  brokerRssMb: 300,
  groupVsRedisGroup: 1.5,
  groupVsJetStream: 4,
  groupHalfSpeedP99Ms: 50,
} as const;
/** Figures the issue measured on this machine; printed for context, never compared. */
const ISSUE_FIGURES = { redisAppendsPerSec: 41_000, redisGroupReadPerSec: '71,000-112,000', jetstreamPublishesPerSec: 12_800, jetstreamReadsPerSec: 31_600 } as const;
const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(BENCH_DIR, '..');
const OUT_DIR = path.join(BENCH_DIR, 'out');

const PHASES = ['redis', 'kcat', 'kafkajs', 'group', 'redis-group', 'jetstream'] as const;
type Phase = (typeof PHASES)[number];

interface Settings {
  records: number;
  phases: ReadonlySet<Phase>;
  kafkajsProcesses: number;
  kafkajsProducers: number;
  kafkajsInFlight: number;
  kafkajsBatch: number;
  redisPipeline: number;
  /** Passes of the 12-reader read-back and of each XRANGE read (the median is reported). */
  readPasses: number;
  /** Passes of each system's full-speed end-to-end run (the median is reported; half speed is paced from it). */
  e2ePasses: number;
  halfSpeedPasses: number;
  groupMembers: number;
  groupConsumerProcesses: number;
  groupWarmup: number;
  groupCommit: GroupCommit;
  groupPartitionsConcurrently: number;
  /** Spillway's end-to-end producer (BENCH_GROUP_PRODUCER). */
  groupProducer: SpillwayProducer;
  halfSpeedMaxS: number;
  phaseTimeoutMs: number;
  kcat: string;
  redisServer: string;
  natsServer: string;
}

function isPhase(p: string): p is Phase {
  return (PHASES as readonly string[]).includes(p);
}

/** BENCH_GROUP_COMMIT: async (default), awaited, or a number of ms (a timer). */
function groupCommit(raw: string | undefined, problems: string[]): GroupCommit {
  const v = (raw ?? '').trim();
  if (v === '' || v === 'async') return { mode: 'async', intervalMs: 0 };
  if (v === 'awaited') return { mode: 'awaited', intervalMs: 0 };
  const n = Number(v);
  if (Number.isInteger(n) && n >= 1 && n <= 3_600_000) return { mode: 'interval', intervalMs: n };
  problems.push(`BENCH_GROUP_COMMIT=${v}: expected async, awaited or a number of ms in [1, 3600000]`);
  return { mode: 'async', intervalMs: 0 };
}

function groupProducer(raw: string | undefined, problems: string[]): SpillwayProducer {
  const v = (raw ?? '').trim();
  if (v === '' || v === 'wire') return 'wire';
  if (v === 'kcat') return 'kcat';
  problems.push(`BENCH_GROUP_PRODUCER=${v}: expected wire or kcat`);
  return 'wire';
}

function spillwayProducerShape(s: Settings): string {
  if (s.groupProducer === 'kcat') return `kcat -P fed by a pipe (${Object.entries(KCAT_PRODUCE_SETTINGS).map(([k, v]) => `${k}=${v}`).join(', ')})`;
  return `the bench's Kafka wire producer (Produce v7, acks=-1, one record batch per send of up to ${E2E_CHUNK}, partitions in turn, 5 requests in flight)`;
}

function describeGroupCommit(c: GroupCommit): string {
  if (c.mode === 'async') return 'offsets committed after each batch, not awaited before the next fetch (one commit in flight per member)';
  if (c.mode === 'awaited') return "offsets committed after each batch by kafkajs's auto-commit, awaited before the next batch";
  return `offsets committed every ${c.intervalMs} ms (one commit in flight per member)`;
}

function readSettings(env: NodeJS.ProcessEnv): Settings {
  const problems: string[] = [];
  const int = (name: string, def: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return def;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name}=${raw}: expected an integer in [${min}, ${max}]`);
      return def;
    }
    return n;
  };
  const phases = new Set<Phase>();
  const rawPhases = (env.BENCH_PHASES ?? '').trim();
  for (const p of rawPhases === '' ? PHASES : rawPhases.split(',').map((x) => x.trim())) {
    if (isPhase(p)) phases.add(p);
    else problems.push(`BENCH_PHASES: unknown phase '${p}' (known: ${PHASES.join(', ')})`);
  }
  const settings: Settings = {
    records: int('BENCH_RECORDS', 1_000_000, 1, 100_000_000),
    phases,
    kafkajsProcesses: int('BENCH_KAFKAJS_PROCESSES', 2, 1, 32),
    kafkajsProducers: int('BENCH_KAFKAJS_PRODUCERS', 4, 1, 64),
    kafkajsInFlight: int('BENCH_KAFKAJS_IN_FLIGHT', 2, 1, 64),
    kafkajsBatch: int('BENCH_KAFKAJS_BATCH', 1000, 1, 100_000),
    redisPipeline: int('BENCH_REDIS_PIPELINE', 1000, 1, 100_000),
    readPasses: int('BENCH_READ_PASSES', 3, 1, 9),
    e2ePasses: int('BENCH_E2E_PASSES', 5, 1, 9),
    halfSpeedPasses: int('BENCH_HALF_SPEED_PASSES', 3, 1, 9),
    groupMembers: int('BENCH_GROUP_MEMBERS', 3, 1, 12),
    groupConsumerProcesses: int('BENCH_GROUP_CONSUMER_PROCESSES', 1, 1, 12),
    groupWarmup: int('BENCH_GROUP_WARMUP', 200_000, 0, 10_000_000),
    groupCommit: groupCommit(env.BENCH_GROUP_COMMIT, problems),
    groupPartitionsConcurrently: int('BENCH_GROUP_PARTITIONS_CONCURRENTLY', 1, 1, 64),
    groupProducer: groupProducer(env.BENCH_GROUP_PRODUCER, problems),
    halfSpeedMaxS: int('BENCH_HALF_SPEED_MAX_S', 30, 1, 86_400),
    phaseTimeoutMs: int('BENCH_PHASE_TIMEOUT_S', 900, 10, 86_400) * 1000,
    kcat: env.BENCH_KCAT ?? 'kcat',
    redisServer: env.BENCH_REDIS_SERVER ?? '/usr/bin/redis-server',
    natsServer: env.BENCH_NATS_SERVER ?? '/usr/sbin/nats-server',
  };
  if (problems.length > 0) throw new BenchError('BAD_SETTINGS', `bad settings:\n  ${problems.join('\n  ')}`);
  return settings;
}

function kafkajsShape(s: Settings): string {
  const procs = s.kafkajsProcesses === 1 ? '1 process' : `${s.kafkajsProcesses} processes`;
  return `${procs} x ${s.kafkajsProducers} producers x ${s.kafkajsInFlight} sends in flight, ${s.kafkajsBatch} records/send`;
}

function groupShape(s: Settings): string {
  const procs = s.groupConsumerProcesses === 1 ? 'one consumer process' : `${Math.min(s.groupConsumerProcesses, s.groupMembers)} consumer processes`;
  return `${s.groupMembers} members in ${procs}`;
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function describe(label: string, t: Throughput): string {
  return `${label}: ${fmt(t.records)} records in ${fmt(t.ms / 1000, 2)} s = ${fmt(t.recordsPerSec)} records/s, ${fmt(t.mbPerSec, 1)} MB/s`;
}

/** Server CPU time per record: unlike rates, hardly moved by other work competing for the cores. */
function usPerRecord(cpuMs: number, records: number): number {
  return (cpuMs * 1000) / records;
}

function requireComplete(label: string, check: ReadBackSummary): void {
  if (!check.ok) throw new BenchError('READ_BACK_INCOMPLETE', `${label}: read-back is not exact: ${JSON.stringify(check)}`);
}

// ---------------------------------------------------------------- Redis reference (phase redis)

interface RedisClientFigures {
  client: string;
  append: Throughput;
  appendLatency: Latency;
  read: Throughput;
  /** Every XRANGE pass (ms), in run order; `read` is the median one. */
  readPassesMs: number[];
  readRequests: number;
  readCheck: ReadBackSummary;
  /** redis-server CPU time per record (us) while appending and while reading. */
  serverUsPerRecord: { append: number; read: number };
  peakRssBytes: number;
}

interface RedisFigures {
  version: string;
  /** The reference: ioredis. */
  ioredis: RedisClientFigures;
  /** Info: the raw RESP client, the best case a client could get. */
  raw: RedisClientFigures;
}

/** "; passes 0.41, 0.38, 0.52 s (median reported)" when there was more than one. */
function passesNote(passesMs: readonly number[]): string {
  return passesMs.length > 1 ? `; passes ${passesMs.map((ms) => fmt(ms / 1000, 2)).join(', ')} s (median reported)` : '';
}

/** Runs `fn` and returns its result with the CPU time `pid` spent meanwhile (ms). */
async function withServerCpu<T>(pid: number, fn: () => Promise<T>): Promise<{ result: T; cpuMs: number }> {
  const c0 = cpuMark(pid);
  const t0 = performance.now();
  const result = await fn();
  return { result, cpuMs: cpuUse(c0, cpuMark(pid), performance.now() - t0).brokerCpuMs };
}

async function measureRedisClient(
  s: Settings,
  client: string,
  pid: number,
  append: () => Promise<RedisAppendResult>,
  readBack: () => Promise<RedisReadResult>,
): Promise<RedisClientFigures> {
  const a = await withServerCpu(pid, append);
  const passes: { result: RedisReadResult; cpuMs: number }[] = [];
  for (let i = 0; i < s.readPasses; i++) {
    const pass = await withServerCpu(pid, readBack);
    requireComplete(`redis XRANGE (${client})`, pass.result.check);
    passes.push(pass);
  }
  const r = medianBy(passes, (p) => p.result.ms);
  const f: RedisClientFigures = {
    client,
    append: throughput(s.records, a.result.ms),
    appendLatency: latency(a.result.latenciesMs),
    read: throughput(s.records, r.result.ms),
    readPassesMs: passes.map((p) => p.result.ms),
    readRequests: r.result.requests,
    readCheck: r.result.check,
    serverUsPerRecord: { append: usPerRecord(a.cpuMs, s.records), read: usPerRecord(r.cpuMs, s.records) },
    peakRssBytes: readRss(pid)?.hwmBytes ?? 0,
  };
  say(
    `${describe(`redis XADD, ${client} (pipelines of ${s.redisPipeline})`, f.append)}; pipeline round trip p50 ${fmt(f.appendLatency.p50Ms, 1)} ms, p99 ${fmt(f.appendLatency.p99Ms, 1)} ms; ` +
      `${fmt(f.serverUsPerRecord.append, 1)} us of redis-server CPU per record`,
  );
  say(
    `${describe(`redis XRANGE, ${client} (COUNT 1000)`, f.read)}; ${f.readRequests} requests, every record back exactly once; ${fmt(f.serverUsPerRecord.read, 2)} us of redis-server CPU per record` +
      `${passesNote(f.readPassesMs)}`,
  );
  return f;
}

async function runRedis(s: Settings, cleanup: Cleanup): Promise<RedisFigures> {
  const key = 'spillway-bench';
  // One fresh server per client, so neither measurement inherits the other's AOF.
  const a = await startRedis({ cleanup, binary: s.redisServer });
  const io = await connectIoredis(a.port, 'spillway-bench');
  cleanup.add('ioredis client', () => void io.disconnect());
  const version = await ioredisServerVersion(io);
  say(`redis-server ${version} (appendonly yes, appendfsync always, save ''), a fresh server per client; ratios and targets use the ioredis figures`);
  const ioredis = await measureRedisClient(
    s,
    'ioredis',
    a.pid,
    () => ioredisAppend(io, key, s.records, s.redisPipeline),
    () => ioredisReadBack(io, key, s.records, 1000),
  );
  io.disconnect();
  await stopAndRemove(a);

  const b = await startRedis({ cleanup, binary: s.redisServer });
  const client = await RespClient.connect(b.port);
  cleanup.add('redis client', () => client.close());
  const raw = await measureRedisClient(
    s,
    'raw RESP (best-case client)',
    b.pid,
    () => redisAppend(client, key, s.records, s.redisPipeline),
    () => redisReadBack(client, key, s.records, 1000),
  );
  await client.close();
  await stopAndRemove(b);
  return { version, ioredis, raw };
}

// ---------------------------------------------------------------- broker phases

type KcatRead = Throughput & { command: string; bytes: number; check: ReadBackSummary; broker: PhaseMetrics; cpu: CpuUse; passesMs: number[] };
type Measured<T> = { result: T; broker: PhaseMetrics; cpu: CpuUse };
type GroupRun = E2eRun & { broker: PhaseMetrics };

interface BrokerFigures {
  kcatProduce?: Throughput & { command: string; broker: PhaseMetrics; cpu: CpuUse };
  kcatRead?: KcatRead;
  kcatReadCount?: KcatRead;
  kcatReadPartitions?: KcatRead;
  kafkajsProduce?: Throughput & { sends: number; latency: Latency; broker: PhaseMetrics; cpu: CpuUse; producerCores: number };
  kafkajsTopicRead?: KcatRead;
  groupFull?: GroupRun;
  groupHalf?: GroupRun;
  rss: { peakSampledBytes: number; hwmBytes: number; samples: number; perPhaseBytes: Record<string, number> };
  problems: string[];
  stop: string;
}

/** What every broker phase needs. */
interface PhaseContext {
  s: Settings;
  broker: BrokerProcess;
  bootstrap: string;
  inputFile: string;
  readFile: string;
  cleanup: Cleanup;
  rss: RssSampler;
  measure: <T>(phase: string, fn: () => Promise<T>) => Promise<Measured<T>>;
}

const KCAT_TOPIC = 'bench-kcat';
const KAFKAJS_TOPIC = 'bench-kafkajs';

function ensureAlive(broker: BrokerProcess): void {
  const early = broker.exitedEarly();
  if (early) throw new BenchError('BROKER_DIED', `${early}\n${broker.problems.join('\n')}`);
}

/** The broker's durable log end offsets must add up to exactly what was produced. */
async function verifyLogEnd(broker: BrokerProcess, topic: string, expected: number): Promise<void> {
  const end = sumOf(await scrape(broker.metricsPort), 'spillway_broker_log_end_offset', { topic });
  if (end !== expected) throw new BenchError('LOG_END_MISMATCH', `${topic}: log end offsets add up to ${end}, expected ${expected}`);
}

/** Steal time (bench/lib/cpu.ts), when there was any worth naming: the host ran something else while this VM had work. */
function stealNote(fraction: number): string {
  return fraction >= 0.005 ? `, ${fmt(fraction * 100, 1)}% stolen by the hypervisor` : '';
}

function printCpu(phase: string, cpu: CpuUse, records: number): void {
  say(
    `  cpu during ${phase}: broker ${fmt(cpu.brokerCores, 2)} cores (${fmt(usPerRecord(cpu.brokerCpuMs, records), 2)} us of broker CPU per record), ` +
      `bench process ${fmt(cpu.benchCores, 2)} cores, machine ${fmt(cpu.machineBusyFraction * 100)}% busy (${os.cpus().length} cores)${stealNote(cpu.machineStealFraction)}`,
  );
}

/**
 * Runs one phase between two metric scrapes and two CPU marks (the scrapes stay outside the
 * timed window), attributing RSS samples to it. The broker must be alive before and after.
 */
function phaseMeasurer(broker: BrokerProcess, rss: RssSampler, records: number) {
  return async <T>(phase: string, fn: () => Promise<T>): Promise<Measured<T>> => {
    ensureAlive(broker);
    rss.enter(phase);
    const before = await scrape(broker.metricsPort);
    const c0 = cpuMark(broker.pid);
    const t0 = performance.now();
    const result = await fn();
    const wallMs = performance.now() - t0;
    const c1 = cpuMark(broker.pid);
    const after = await scrape(broker.metricsPort);
    rss.enter('idle');
    ensureAlive(broker);
    const cpu = cpuUse(c0, c1, wallMs);
    printCpu(phase, cpu, records);
    return { result, broker: phaseMetrics(before, after), cpu };
  };
}

async function kcatProducePhase(c: PhaseContext): Promise<NonNullable<BrokerFigures['kcatProduce']>> {
  const m = await c.measure('kcat produce', () => kcatProduce({ kcat: c.s.kcat, bootstrap: c.bootstrap, topic: KCAT_TOPIC, inputFile: c.inputFile, timeoutMs: c.s.phaseTimeoutMs }));
  await verifyLogEnd(c.broker, KCAT_TOPIC, c.s.records);
  const t = throughput(c.s.records, m.result.ms);
  say(`${describe('kcat produce', t)}; ${fmt(m.broker.produceRequests)} Produce requests, ${fmt(m.broker.fsyncRounds)} fsync rounds`);
  return { ...t, command: m.result.command, broker: m.broker, cpu: m.cpu };
}

/**
 * A kcat read-back of `topic`: one process until the end of every partition (eof) or until the
 * N-th record (count), or one process per partition at once (partitions: the target row, run
 * BENCH_READ_PASSES times, the median pass reported; each pass is checked).
 */
async function kcatReadPhase(c: PhaseContext, topic: string, mode: 'eof' | 'count' | 'partitions', label: string): Promise<KcatRead> {
  const common = { kcat: c.s.kcat, bootstrap: c.bootstrap, topic, outputFile: c.readFile, timeoutMs: c.s.phaseTimeoutMs };
  const passes: { m: Measured<{ ms: number; command: string }>; v: ReturnType<typeof verifyReadBack> }[] = [];
  for (let i = 0; i < (mode === 'partitions' ? c.s.readPasses : 1); i++) {
    const m = await c.measure(label, () =>
      mode === 'partitions' ? kcatConsumePartitions({ ...common, partitions: PARTITIONS }) : kcatConsume({ ...common, expected: c.s.records, until: mode }).then((r) => ({ ...r, files: [c.readFile] })),
    );
    const v = verifyReadBack(m.result.files, c.s.records);
    requireComplete(label, v.check);
    passes.push({ m, v });
  }
  const { m, v } = medianBy(passes, (p) => p.m.result.ms);
  const passesMs = passes.map((p) => p.m.result.ms);
  const t = throughput(c.s.records, m.result.ms);
  say(`${describe(label, t)}; ${fmt(m.broker.fetchRequests)} Fetch requests, every record back exactly once${passesNote(passesMs)}`);
  return { ...t, command: m.result.command, bytes: v.bytes, check: v.check, broker: m.broker, cpu: m.cpu, passesMs };
}

async function kafkajsProducePhase(c: PhaseContext): Promise<NonNullable<BrokerFigures['kafkajsProduce']>> {
  const { s } = c;
  const fleet = { bootstrap: c.bootstrap, topic: KAFKAJS_TOPIC, records: s.records, processes: s.kafkajsProcesses, producersPerProcess: s.kafkajsProducers };
  const m = await c.measure('kafkajs produce', () =>
    kafkajsProduceFleet({ ...fleet, inFlightPerProducer: s.kafkajsInFlight, batchSize: s.kafkajsBatch, timeoutMs: s.phaseTimeoutMs, cleanup: c.cleanup }),
  );
  await verifyLogEnd(c.broker, KAFKAJS_TOPIC, s.records);
  const t = throughput(s.records, m.result.ms);
  const lat = latency(m.result.latenciesMs);
  const producerCores = m.result.workerCpuMs / m.result.ms;
  say(`  kafkajs producing process(es): ${fmt(producerCores, 2)} cores in total`);
  say(`${describe(`kafkajs produce (${kafkajsShape(s)})`, t)}; send() p50 ${fmt(lat.p50Ms, 1)} ms, p99 ${fmt(lat.p99Ms, 1)} ms`);
  return { ...t, sends: m.result.latenciesMs.length, latency: lat, broker: m.broker, cpu: m.cpu, producerCores };
}

// ---------------------------------------------------------------- end-to-end phases

function e2eOptions(s: Settings, cleanup: Cleanup, label: string, records: number, ratePerSec: number | null): E2eOptions {
  return { label, records, ratePerSec, members: s.groupMembers, consumerProcesses: s.groupConsumerProcesses, warmup: s.groupWarmup, timeoutMs: s.phaseTimeoutMs, cleanup };
}

/**
 * One system's end-to-end runs: `s.e2ePasses` full-speed passes and `s.halfSpeedPasses` half-speed
 * passes, each on a fresh topic or a fresh server, as a single run would be. The systems' passes
 * are interleaved (interleaveE2e), so a slow stretch of the host falls on all of them alike.
 * - Full speed: the median pass by end-to-end rate is the run that counts, and half speed is
 *   paced from it. On this shared 2-core machine the same full-speed run swung from 164,000/s to
 *   244,000/s within minutes (the producer, the server and the consumer process compete for the
 *   cores): one pass says more about the moment than about the system.
 * - Half speed, every pass at the same pace: the pass with the median p99 counts. A p99 over one
 *   run of a few seconds moves with the host: the same code gave a half-speed p99 of 23-92 ms
 *   within the hour, the bad runs being those where the consumer's same scavenges took 3x longer
 *   (12-19 ms instead of 3-6 ms).
 * Every pass's rate and p99 are kept (passesPerSec, passesP99Ms) and printed.
 */
class E2eSeries<R extends E2eRun> {
  private readonly fulls: R[] = [];
  private readonly halves: R[] = [];
  private fullRun: (R & { passesPerSec: number[] }) | undefined;
  private halfRun: (R & { passesP99Ms: number[] }) | undefined;

  constructor(
    private readonly s: Settings,
    /** e.g. 'spillway group e2e'; runs are labelled '<label>, full speed (pass i of n)'. */
    readonly label: string,
    private readonly run: (label: string, pass: number, records: number, rate: number | null) => Promise<R>,
  ) {}

  async fullPass(i: number): Promise<void> {
    settleDisk();
    this.fulls.push(await this.run(passLabel(`${this.label}, full speed`, i, this.s.e2ePasses), i, this.s.records, null));
  }

  async halfPass(i: number): Promise<void> {
    const h = halfSpeed(this.s, this.full());
    settleDisk();
    this.halves.push(await this.run(passLabel(`${this.label}, half speed`, i, this.s.halfSpeedPasses), i, h.records, h.rate));
  }

  /** The median full-speed pass (said once, with every pass's rate). */
  full(): R & { passesPerSec: number[] } {
    if (this.fullRun) return this.fullRun;
    const label = `${this.label}, full speed`;
    const median = medianBy(this.fulls, (p) => p.endToEnd.ms);
    const passesPerSec = this.fulls.map((p) => p.endToEnd.recordsPerSec);
    if (this.fulls.length > 1) say(`${label}: end-to-end ${passesPerSec.map((r) => fmt(r)).join(', ')}/s in ${this.fulls.length} passes; the median pass (${fmt(median.endToEnd.recordsPerSec)}/s) is reported`);
    this.fullRun = { ...median, label, passesPerSec };
    return this.fullRun;
  }

  /** The half-speed pass with the median p99 (said once, with every pass's p99). */
  half(): R & { passesP99Ms: number[] } {
    if (this.halfRun) return this.halfRun;
    const label = `${this.label}, half speed`;
    const median = medianBy(this.halves, (p) => p.latency.p99Ms);
    const passesP99Ms = this.halves.map((p) => p.latency.p99Ms);
    if (this.halves.length > 1) say(`${label}: p99 ${passesP99Ms.map((x) => fmt(x, 1)).join(', ')} ms in ${this.halves.length} passes; the median pass (p99 ${fmt(median.latency.p99Ms, 1)} ms) is reported`);
    this.halfRun = { ...median, label, passesP99Ms };
    return this.halfRun;
  }
}

/**
 * Writes back whatever the page cache holds dirty (sync(1)) before each end-to-end pass, outside
 * any clock. nats-server 2.9 does not fsync its store: a JetStream run left 300-530 MB dirty
 * (/proc/meminfo), which the kernel wrote back during whatever ran next. A Spillway pass that came
 * right after one ran with its broker-side Produce p99 at 43-93 ms instead of 10-22 ms (its
 * fsyncs queued behind that writeback), and the same run after 60 s of idle alone was normal.
 */
function settleDisk(): void {
  execFileSync('sync', [], { stdio: 'ignore', timeout: 120_000 });
}

function passLabel(label: string, i: number, n: number): string {
  return n > 1 ? `${label} (pass ${i + 1} of ${n})` : label;
}

/**
 * Runs the systems' end-to-end passes interleaved: full-speed pass 1 of every system, then pass 2
 * of every system, ...; then the half-speed passes the same way, each system paced at half its
 * own median full-speed rate. Run one system after the other instead, and a ratio between two of
 * them compared two different moments of the host: Spillway's full speed and JetStream's, measured
 * about 4 minutes apart, gave 3.18x in one run and 4.49x in another (the same code).
 */
async function interleaveE2e(s: Settings, series: readonly E2eSeries<E2eRun>[]): Promise<void> {
  for (let i = 0; i < s.e2ePasses; i++) for (const x of series) await x.fullPass(i);
  for (const x of series) x.full();
  for (let i = 0; i < s.halfSpeedPasses; i++) for (const x of series) await x.halfPass(i);
  for (const x of series) x.half();
}

/** Half of the full-speed end-to-end rate, and how many records that run produces. */
function halfSpeed(s: Settings, full: E2eRun): { rate: number; records: number } {
  const rate = Math.max(1, Math.round(full.endToEnd.recordsPerSec / 2));
  return { rate, records: Math.min(s.records, Math.max(1, Math.round(rate * s.halfSpeedMaxS))) };
}

function reportE2e(system: string, r: E2eRun): void {
  requireComplete(r.label, r.check);
  const c = r.cpu;
  say(
    `  cpu during ${r.label}: ${system} ${fmt(c.serverCores, 2)} cores (${fmt(usPerRecord(c.serverCpuMs, r.records), 1)} us per record), producer ${fmt(c.producerCores, 2)}, consumer process(es) ${fmt(c.consumerCores, 2)}, ` +
      `bench process ${fmt(c.benchCores, 2)}, machine ${fmt(c.machineBusyFraction * 100)}% busy${stealNote(c.machineStealFraction)}`,
  );
  const l = r.latency;
  const pace = r.targetRatePerSec === null ? 'unpaced' : `paced at ${fmt(r.targetRatePerSec)}/s`;
  say(
    `${r.label} (${pace}): ${fmt(r.records)} records; produce ${fmt(r.produce.recordsPerSec)}/s (${fmt(r.produce.ms / 1000, 2)} s), ` +
      `end-to-end ${fmt(r.endToEnd.recordsPerSec)}/s (${fmt(r.endToEnd.ms / 1000, 2)} s); produce-to-consume p50 ${fmt(l.p50Ms, 1)} ms, p99 ${fmt(l.p99Ms, 1)} ms, max ${fmt(l.maxMs, 1)} ms; ` +
      `${fmt(r.deliveries)} deliveries, every record consumed exactly once; the group took ${fmt(r.groupStartMs / 1000, 2)} s to start, the warm-up ${fmt(r.warmupMs / 1000, 2)} s`,
  );
}

/** Spillway's end-to-end runs: kcat -> broker -> kafkajs group, each on a fresh topic. */
function spillwaySeries(c: PhaseContext): E2eSeries<GroupRun> {
  const run = async (label: string, rssPhase: string, topic: string, records: number, rate: number | null): Promise<GroupRun> => {
    let before: Sample[] = [];
    let after: Sample[] = [];
    const window = {
      start: async () => {
        ensureAlive(c.broker);
        c.rss.enter(rssPhase);
        before = await scrape(c.broker.metricsPort);
      },
      end: async () => {
        after = await scrape(c.broker.metricsPort);
        c.rss.enter('idle');
        ensureAlive(c.broker);
      },
    };
    const r = await runEndToEnd({ ...e2eOptions(c.s, c.cleanup, label, records, rate), window }, () =>
      spillwaySetup({ producer: c.s.groupProducer, kcat: c.s.kcat, bootstrap: c.bootstrap, metricsPort: c.broker.metricsPort, brokerPid: c.broker.pid, topic, timeoutMs: c.s.phaseTimeoutMs, cleanup: c.cleanup, commit: c.s.groupCommit, partitionsConcurrently: c.s.groupPartitionsConcurrently }),
    );
    await verifyLogEnd(c.broker, topic, records + c.s.groupWarmup);
    await deleteTopics(c.bootstrap, [topic]);
    reportE2e('broker', r);
    const m = phaseMetrics(before, after);
    say(
      `  broker-side: ${fmt(m.produceRequests)} Produce requests (p99 ${fmt(m.produceP99Ms, 1)} ms), ${fmt(m.fetchRequests)} Fetch requests (p50 ${fmt(m.fetchP50Ms, 1)} ms, p99 ${fmt(m.fetchP99Ms, 1)} ms), ` +
        `${fmt(m.offsetCommitRequests)} OffsetCommit requests (p50 ${fmt(m.offsetCommitP50Ms, 1)} ms, p99 ${fmt(m.offsetCommitP99Ms, 1)} ms), ${fmt(m.fsyncRounds)} log fsync rounds (p99 ${fmt(m.fsyncP99Ms, 1)} ms)`,
    );
    const split = r.latencySplit;
    if (split) {
      const names = c.s.groupProducer === 'kcat' ? { clock: "kcat's clock", toClient: 'bench pipe -> kcat', client: "kcat (incl. librdkafka's queue)" } : { clock: "the producer's clock", toClient: 'stamp -> batch CreateTime', client: 'producer' };
      say(
        `  latency split at the record's CreateTime (${names.clock}, ms resolution; one record in ${SPLIT_EVERY}): ${names.toClient} p50 ${fmt(split.toClient.p50Ms, 1)} ms, p99 ${fmt(split.toClient.p99Ms, 1)} ms; ` +
          `${names.client} -> consumer p50 ${fmt(split.clientToConsumer.p50Ms, 1)} ms, p99 ${fmt(split.clientToConsumer.p99Ms, 1)} ms`,
      );
    }
    return { ...r, broker: m };
  };
  return new E2eSeries(c.s, 'spillway group e2e', (label, pass, records, rate) => {
    const speed = rate === null ? 'full' : 'half';
    return run(label, `group e2e ${speed}`, `bench-group-${speed}${pass === 0 ? '' : `-${pass + 1}`}`, records, rate);
  });
}

interface ReferenceE2e {
  version: string;
  full: E2eRun;
  half: E2eRun;
}

/** A reference system's end-to-end runs (a fresh server per run), and the server's version once one has run. */
interface ReferenceSeries {
  series: E2eSeries<E2eRun>;
  version(): string;
}

/**
 * A reference system's series: `setup` starts a fresh server per run; `describe` is said once,
 * after the first server has started (it reports the server's version).
 */
function referenceSeries(s: Settings, cleanup: Cleanup, label: string, server: string, setup: () => Promise<E2eSetup & { version: string }>, describe: (version: string) => string): ReferenceSeries {
  let version: string | undefined;
  const started = async () => {
    const r = await setup();
    if (version === undefined) say(describe(r.version));
    version = r.version;
    return r;
  };
  const series = new E2eSeries(s, label, async (runLabel, _pass, records, rate) => {
    const r = await runEndToEnd(e2eOptions(s, cleanup, runLabel, records, rate), started);
    reportE2e(server, r);
    return r;
  });
  return { series, version: () => version ?? 'unknown' };
}

function redisGroupSeries(s: Settings, cleanup: Cleanup): ReferenceSeries {
  return referenceSeries(s, cleanup, 'redis streams group e2e', 'redis-server', () => redisGroupSetup({ redisServer: s.redisServer, cleanup }), (v) => `redis-server ${v}, a fresh server per run (appendonly yes, appendfsync always)`);
}

function jetstreamSeries(s: Settings, cleanup: Cleanup): ReferenceSeries {
  return referenceSeries(s, cleanup, 'nats jetstream e2e', 'nats-server', () => jetstreamSetup({ natsServer: s.natsServer, cleanup, members: s.groupMembers }), (v) => `nats-server ${v} -js, a fresh server and store per run (file storage)`);
}

function referenceFigures(r: ReferenceSeries): ReferenceE2e {
  return { version: r.version(), full: r.series.full(), half: r.series.half() };
}

// ---------------------------------------------------------------- the broker's run

/** `references`: the reference systems' end-to-end series, run interleaved with Spillway's group phase (the broker idles meanwhile). */
async function runBroker(s: Settings, inputFile: string, cleanup: Cleanup, references: readonly ReferenceSeries[]): Promise<BrokerFigures> {
  const broker = await startBroker({ fsync: 'always', logLevel: 'info', cleanup });
  const rss = new RssSampler(broker.pid, 100);
  rss.start();
  cleanup.add('rss sampler', () => rss.stop());
  const bootstrap = `127.0.0.1:${broker.port}`;
  say(`broker pid ${broker.pid} on ${bootstrap} (metrics :${broker.metricsPort}, --fsync always, data ${broker.dataDir})`);
  const topics = [...(s.phases.has('kcat') ? [KCAT_TOPIC] : []), ...(s.phases.has('kafkajs') ? [KAFKAJS_TOPIC] : [])];
  if (topics.length > 0) await createTopics(bootstrap, topics, PARTITIONS);
  const readFile = path.join(path.dirname(inputFile), 'read-back.txt');
  const c: PhaseContext = { s, broker, bootstrap, inputFile, readFile, cleanup, rss, measure: phaseMeasurer(broker, rss, s.records) };

  const f: Partial<BrokerFigures> = {};
  if (s.phases.has('kcat')) {
    f.kcatProduce = await kcatProducePhase(c);
    f.kcatRead = await kcatReadPhase(c, KCAT_TOPIC, 'eof', 'kcat read-back (-e)');
    f.kcatReadCount = await kcatReadPhase(c, KCAT_TOPIC, 'count', 'kcat read-back (-c N: exits at the N-th record)');
    f.kcatReadPartitions = await kcatReadPhase(c, KCAT_TOPIC, 'partitions', `kcat read-back, ${PARTITIONS} readers (one per partition, -p P -e)`);
    await deleteTopics(bootstrap, [KCAT_TOPIC]);
  }
  if (s.phases.has('kafkajs')) {
    f.kafkajsProduce = await kafkajsProducePhase(c);
    f.kafkajsTopicRead = await kcatReadPhase(c, KAFKAJS_TOPIC, 'eof', 'kafkajs topic read-back (kcat -e)');
    await deleteTopics(bootstrap, [KAFKAJS_TOPIC]);
  }
  if (s.phases.has('group')) {
    const spillway = spillwaySeries(c);
    await interleaveE2e(s, [spillway, ...references.map((r) => r.series)]);
    f.groupFull = spillway.full();
    f.groupHalf = spillway.half();
  }
  rss.stop();
  const hwmBytes = Math.max(readRss(broker.pid)?.hwmBytes ?? 0, rss.lastHwmBytes);
  const stop = await broker.stop();
  return {
    ...f,
    rss: { peakSampledBytes: rss.peakBytes, hwmBytes, samples: rss.samples, perPhaseBytes: Object.fromEntries(rss.phasePeaks) },
    problems: [...broker.problems],
    stop,
  };
}

// ---------------------------------------------------------------- report

interface Figures {
  redis?: RedisFigures;
  broker?: BrokerFigures;
  redisGroup?: ReferenceE2e;
  jetstream?: ReferenceE2e;
}

/**
 * A ratio row when both sides were measured in this run; otherwise the figure (or its absence)
 * with the target marked as not evaluated.
 */
function compare(figure: string, value: number | undefined, unit: string, reference: string, referenceValue: number | undefined, minRatio: number | null): Comparison | undefined {
  if (value === undefined) return undefined;
  if (referenceValue === undefined) return missingRow(figure, value, unit, reference, minRatio);
  return ratioRow(figure, value, unit, reference, referenceValue, minRatio);
}

function cpuPerRecord(r: E2eRun | undefined): number | undefined {
  return r ? usPerRecord(r.cpu.serverCpuMs, r.records) : undefined;
}

function comparisons(s: Settings, f: Figures): Comparison[] {
  const b = f.broker;
  const io = f.redis?.ioredis;
  const raw = f.redis?.raw;
  const rg = f.redisGroup;
  const js = f.jetstream;
  const send = `kafkajs send() of ${s.kafkajsBatch}`;
  const pipe = `ioredis XADD x${s.redisPipeline}`;
  const rows: (Comparison | undefined)[] = [
    compare('kcat produce', b?.kcatProduce?.recordsPerSec, 'rec/s', 'ioredis XADD/s', io?.append.recordsPerSec, TARGETS.kcatProduceVsXadd),
    compare('kcat produce', b?.kcatProduce?.mbPerSec, 'MB/s', 'ioredis XADD MB/s', io?.append.mbPerSec, null),
    compare('kcat produce', b?.kcatProduce?.recordsPerSec, 'rec/s', 'raw-RESP XADD/s, best-case client', raw?.append.recordsPerSec, null),
    compare(`kcat read-back, ${PARTITIONS} readers`, b?.kcatReadPartitions?.recordsPerSec, 'rec/s', 'ioredis XRANGE rec/s', io?.read.recordsPerSec, TARGETS.kcatReadVsXrange),
    compare(`kcat read-back, ${PARTITIONS} readers`, b?.kcatReadPartitions?.recordsPerSec, 'rec/s', 'raw-RESP XRANGE rec/s, best-case client', raw?.read.recordsPerSec, null),
    compare(
      `server CPU per record read, ${PARTITIONS} readers (lower=better)`,
      b?.kcatReadPartitions ? usPerRecord(b.kcatReadPartitions.cpu.brokerCpuMs, s.records) : undefined,
      'us',
      'redis-server us per record, XRANGE',
      io?.serverUsPerRecord.read,
      null,
    ),
    compare('kcat read-back (-e)', b?.kcatRead?.recordsPerSec, 'rec/s', 'ioredis XRANGE rec/s', io?.read.recordsPerSec, null),
    compare('kcat read-back (-e)', b?.kcatRead?.mbPerSec, 'MB/s', 'ioredis XRANGE MB/s', io?.read.mbPerSec, null),
    compare('kcat read-back (-e)', b?.kcatRead?.recordsPerSec, 'rec/s', 'raw-RESP XRANGE rec/s, best-case client', raw?.read.recordsPerSec, null),
    compare('kcat read-back (-c N)', b?.kcatReadCount?.recordsPerSec, 'rec/s', 'ioredis XRANGE rec/s', io?.read.recordsPerSec, null),
    compare('kafkajs produce', b?.kafkajsProduce?.recordsPerSec, 'rec/s', 'ioredis XADD/s', io?.append.recordsPerSec, TARGETS.kafkajsProduceVsXadd),
    compare('kafkajs produce', b?.kafkajsProduce?.mbPerSec, 'MB/s', 'ioredis XADD MB/s', io?.append.mbPerSec, null),
    compare(`${send} p50 (lower=better)`, b?.kafkajsProduce?.latency.p50Ms, 'ms', `${pipe} p50`, io?.appendLatency.p50Ms, null),
    compare(`${send} p99 (lower=better)`, b?.kafkajsProduce?.latency.p99Ms, 'ms', `${pipe} p99`, io?.appendLatency.p99Ms, null),
    compare('kafkajs topic read-back (kcat -e)', b?.kafkajsTopicRead?.recordsPerSec, 'rec/s', 'ioredis XRANGE rec/s', io?.read.recordsPerSec, null),
    compare('group e2e full speed', b?.groupFull?.endToEnd.recordsPerSec, 'rec/s', 'Redis group e2e rec/s', rg?.full.endToEnd.recordsPerSec, TARGETS.groupVsRedisGroup),
    compare('group e2e full speed', b?.groupFull?.endToEnd.recordsPerSec, 'rec/s', 'JetStream e2e rec/s', js?.full.endToEnd.recordsPerSec, TARGETS.groupVsJetStream),
    compare('group produce full speed', b?.groupFull?.produce.recordsPerSec, 'rec/s', 'Redis group XADD/s', rg?.full.produce.recordsPerSec, null),
    compare('group produce full speed', b?.groupFull?.produce.recordsPerSec, 'rec/s', 'JetStream publishes/s', js?.full.produce.recordsPerSec, null),
    compare('group e2e p50 full speed (lower=better)', b?.groupFull?.latency.p50Ms, 'ms', 'Redis group p50', rg?.full.latency.p50Ms, null),
    compare('group e2e p99 full speed (lower=better)', b?.groupFull?.latency.p99Ms, 'ms', 'Redis group p99', rg?.full.latency.p99Ms, null),
    compare('group e2e p99 full speed (lower=better)', b?.groupFull?.latency.p99Ms, 'ms', 'JetStream p99', js?.full.latency.p99Ms, null),
    compare('group e2e half speed', b?.groupHalf?.endToEnd.recordsPerSec, 'rec/s', 'Redis group half speed', rg?.half.endToEnd.recordsPerSec, null),
    compare('group e2e p50 half speed (lower=better)', b?.groupHalf?.latency.p50Ms, 'ms', 'Redis group p50', rg?.half.latency.p50Ms, null),
    compare('group e2e p99 half speed (lower=better)', b?.groupHalf?.latency.p99Ms, 'ms', 'Redis group p99', rg?.half.latency.p99Ms, null),
    compare('group e2e p99 half speed (lower=better)', b?.groupHalf?.latency.p99Ms, 'ms', 'JetStream p99', js?.half.latency.p99Ms, null),
    compare('group e2e full: server CPU/record (lower=better)', cpuPerRecord(b?.groupFull), 'us', 'Redis group', cpuPerRecord(rg?.full), null),
    compare('group e2e full: server CPU/record (lower=better)', cpuPerRecord(b?.groupFull), 'us', 'JetStream', cpuPerRecord(js?.full), null),
    b?.groupHalf ? limitRow('group e2e p99 half speed', b.groupHalf.latency.p99Ms, 'ms', TARGETS.groupHalfSpeedP99Ms) : undefined,
    b ? limitRow('broker peak RSS', Math.max(b.rss.peakSampledBytes, b.rss.hwmBytes) / 1e6, 'MB', TARGETS.brokerRssMb) : undefined,
  ];
  return rows.filter((r): r is Comparison => r !== undefined);
}

function printE2eTable(s: Settings, f: Figures): void {
  const runs: [string, E2eRun | undefined][] = [
    ['Spillway, full', f.broker?.groupFull],
    ['Spillway, half', f.broker?.groupHalf],
    ['Redis Streams, full', f.redisGroup?.full],
    ['Redis Streams, half', f.redisGroup?.half],
    ['JetStream, full', f.jetstream?.full],
    ['JetStream, half', f.jetstream?.half],
  ];
  const present = runs.filter((r): r is [string, E2eRun] => r[1] !== undefined);
  if (present.length === 0) return;
  say('');
  say(`end to end (${fmt(s.records)} records x ${RECORD_BYTES} B, ${groupShape(s)}; half speed = paced at half the full-speed end-to-end rate; server us/rec = server CPU time per record, all threads):`);
  const header = ['run', 'records', 'paced at/s', 'produce rec/s', 'consume (e2e) rec/s', 'p50 ms', 'p99 ms', 'max ms', 'server cores', 'server us/rec', 'producer cores', 'consumer cores', 'machine busy', 'steal'];
  const body = present.map(([name, r]) => [
    name,
    fmt(r.records),
    r.targetRatePerSec === null ? '-' : fmt(r.targetRatePerSec),
    fmt(r.produce.recordsPerSec),
    fmt(r.endToEnd.recordsPerSec),
    fmt(r.latency.p50Ms, 1),
    fmt(r.latency.p99Ms, 1),
    fmt(r.latency.maxMs, 1),
    fmt(r.cpu.serverCores, 2),
    fmt(usPerRecord(r.cpu.serverCpuMs, r.records), 1),
    fmt(r.cpu.producerCores, 2),
    fmt(r.cpu.consumerCores, 2),
    `${fmt(r.cpu.machineBusyFraction * 100)}%`,
    `${fmt(r.cpu.machineStealFraction * 100, 1)}%`,
  ]);
  const rows = [header, ...body];
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) say(`  ${r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')}`);
  const passes = present.filter(([, r]) => r.passesPerSec !== undefined && r.passesPerSec.length > 1);
  if (passes.length > 0) say(`  full-speed rows are the median of ${s.e2ePasses} passes; e2e rec/s per pass: ${passes.map(([name, r]) => `${name.replace(/, full$/, '')} ${(r.passesPerSec ?? []).map((x) => fmt(x)).join(', ')}`).join('; ')}`);
  const halves = present.filter(([, r]) => r.passesP99Ms !== undefined && r.passesP99Ms.length > 1);
  if (halves.length > 0) say(`  half-speed rows are the pass with the median p99 of ${s.halfSpeedPasses}; p99 ms per pass: ${halves.map(([name, r]) => `${name.replace(/, half$/, '')} ${(r.passesP99Ms ?? []).map((x) => fmt(x, 1)).join(', ')}`).join('; ')}`);
}

function printDetails(s: Settings, f: Figures): void {
  const ms = (n: number) => `${fmt(n, 1)} ms`;
  const b = f.broker;
  say('');
  say(`records: ${fmt(s.records)} x ${RECORD_BYTES} B; topics: ${PARTITIONS} partitions; broker --fsync always; phases: ${[...s.phases].join(', ')}`);
  if (b?.kcatProduce || b?.groupFull) say(`kcat produce settings: ${Object.entries(KCAT_PRODUCE_SETTINGS).map(([k, v]) => `${k}=${v}`).join(', ')} (other librdkafka settings default)`);
  if (b?.kcatRead || b?.kafkajsTopicRead) say(`kcat read-back settings: ${Object.entries(KCAT_CONSUME_SETTINGS).map(([k, v]) => `${k}=${v}`).join(', ')}, -o ${KCAT_START_OFFSET} (see KCAT_START_OFFSET), for every read-back; other librdkafka settings default; each kcat -C runs under ${kcatReaderWrapping()}`);
  if (b?.kafkajsProduce) {
    const k = b.kafkajsProduce;
    say(`kafkajs: ${kafkajsShape(s)}, keyless records (default partitioner: round-robin), acks=-1, no compression, retries 0`);
    say(`kafkajs producing processes used ${fmt(k.producerCores, 2)} cores, the broker ${fmt(k.cpu.brokerCores, 2)}; machine ${fmt(k.cpu.machineBusyFraction * 100)}% busy${stealNote(k.cpu.machineStealFraction)}`);
    say(`produce latency: kafkajs send() of ${s.kafkajsBatch} records p50 ${ms(k.latency.p50Ms)}, p99 ${ms(k.latency.p99Ms)}, max ${ms(k.latency.maxMs)} (${k.sends} sends)`);
  }
  for (const [label, m] of [
    ['kcat produce', b?.kcatProduce?.broker],
    ['kafkajs produce', b?.kafkajsProduce?.broker],
  ] as const) {
    if (!m) continue;
    say(
      `broker-side ${label}: ${fmt(m.produceRequests)} Produce requests, p50 ${ms(m.produceP50Ms)}, p99 ${ms(m.produceP99Ms)} (histogram-interpolated); ` +
        `${fmt(m.fsyncRounds)} fsync rounds (${fmt(m.fsyncFiles)} files), fsync p50 ${ms(m.fsyncP50Ms)}, p99 ${ms(m.fsyncP99Ms)}`,
    );
  }
  if (f.redis) {
    const { ioredis: io, raw } = f.redis;
    say(`redis: ${f.redis.version}; the reference is ioredis (the project's client): XADD pipeline of ${s.redisPipeline} round trip p50 ${ms(io.appendLatency.p50Ms)}, p99 ${ms(io.appendLatency.p99Ms)}; peak RSS ${fmt(io.peakRssBytes / 1e6, 1)} MB`);
    say(`redis, raw RESP client (best case, info only): XADD ${fmt(raw.append.recordsPerSec)}/s (ioredis ${fmt(io.append.recordsPerSec)}/s), XRANGE ${fmt(raw.read.recordsPerSec)}/s (ioredis ${fmt(io.read.recordsPerSec)}/s)`);
    say(`(the issue measured ~${fmt(ISSUE_FIGURES.redisAppendsPerSec)} durable XADDs/s on this machine; this run: ioredis ${fmt(io.append.recordsPerSec)}, raw RESP ${fmt(raw.append.recordsPerSec)})`);
  }
  if (b?.groupFull || f.redisGroup || f.jetstream) {
    say(
      `end to end: ${groupShape(s)} (a child process of its own, apart from the producing bench process, the same for every system; before each run's clock starts, ${s.groupWarmup.toLocaleString('en-US')} warm-up records go through the same producer, topic or stream and members, not measured); producers: Spillway ${spillwayProducerShape(s)}, Redis raw-RESP XADD pipelines of ${E2E_CHUNK} (awaited), ` +
        `JetStream async publishes in windows of ${E2E_CHUNK} (nats.js publish with a reply subject, PubAcks counted as Go's PublishAsync does; acks awaited per window)`,
    );
    say(
      `  consumers: kafkajs eachBatch (maxWaitTimeInMs ${E2E_KAFKA_MAX_WAIT_MS}, ${describeGroupCommit(s.groupCommit)}, ${s.groupPartitionsConcurrently} partition(s) per member at once); ioredis XREADGROUP COUNT ${E2E_CONSUMER_BATCH} BLOCK ${E2E_REDIS_BLOCK_MS} + XACK per batch; ` +
        `nats.js fetch of ${E2E_CONSUMER_BATCH} (expires ${E2E_JETSTREAM_EXPIRES_MS} ms) from one durable pull consumer, explicit acks after each batch; Spillway topics have ${E2E_PARTITIONS} partitions`,
    );
    say(`  latency = time a record reached the consumer's handler - time it was handed to the producing client (stamped in the record); e2e rate = records / (first send -> last record consumed)`);
    say(`  half-speed runs produce min(N, rate x ${s.halfSpeedMaxS} s) records; producer cores = ${s.groupProducer === 'kcat' ? "kcat's for Spillway, the bench process's for Redis and JetStream (it produces for them)" : "the bench process's (it produces for every system)"}`);
    if (f.jetstream) say(`  caveat: nats-server ${f.jetstream.version} has no per-message fsync (sync_interval arrives in 2.10): JetStream acks are not durable the way Spillway's (--fsync always) and Redis's (appendfsync always) are`);
    say(
      `  the issue measured Redis Streams group read-back ~${ISSUE_FIGURES.redisGroupReadPerSec}/s, JetStream ~${fmt(ISSUE_FIGURES.jetstreamPublishesPerSec)} publishes/s and ~${fmt(ISSUE_FIGURES.jetstreamReadsPerSec)} reads/s (context only)`,
    );
  }
  if (b) {
    const phases = Object.entries(b.rss.perPhaseBytes).map(([p, v]) => `${p} ${fmt(v / 1e6, 1)}`);
    say(`broker RSS (MB): peak sampled ${fmt(b.rss.peakSampledBytes / 1e6, 1)} over ${b.rss.samples} samples, VmHWM ${fmt(b.rss.hwmBytes / 1e6, 1)}; by phase: ${phases.join(', ')}`);
    say(`broker stop: ${b.stop}; warnings/errors logged: ${b.problems.length}`);
    for (const p of b.problems.slice(0, 20)) say(`  ${p}`);
  }
}

/** Which broker code was measured: the commit, and whether the working tree differs from it. */
function provenance(): { commit: string; uncommittedBrokerFiles: string[] } {
  const git = (args: string[]) => {
    try {
      return execFileSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return '';
    }
  };
  const status = git(['status', '--porcelain', '--', 'buffer-broker/src', 'lib/src', 'bin']);
  return { commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown', uncommittedBrokerFiles: status === '' ? [] : status.split('\n').map((l) => l.trim()) };
}

function inputDir(cleanup: Cleanup): string {
  // tmpfs when available, so the input file's writeback cannot disturb the fsync-bound phases.
  const shm = '/dev/shm';
  const base = fs.existsSync(shm) ? shm : os.tmpdir();
  return makeTempDir('spillway-bench-input-', cleanup, base);
}

async function run(s: Settings, cleanup: Cleanup): Promise<void> {
  const startedAt = new Date();
  const load = os.loadavg();
  say(`spillway broker bench: ${fmt(s.records)} records of ${RECORD_BYTES} B; phases ${[...s.phases].join(', ')}; ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load ${load.map((l) => l.toFixed(2)).join(' ')}, node ${process.version}`);
  const code = provenance();
  const dirty = code.uncommittedBrokerFiles.length;
  say(`broker code: ${code.commit}${dirty === 0 ? '' : ` + ${dirty} uncommitted change(s) under buffer-broker/src, lib/src, bin (listed in the JSON)`}`);
  const f: Figures = {};
  if (s.phases.has('redis')) f.redis = await runRedis(s, cleanup);
  const redisGroup = s.phases.has('redis-group') ? redisGroupSeries(s, cleanup) : undefined;
  const jetstream = s.phases.has('jetstream') ? jetstreamSeries(s, cleanup) : undefined;
  const references = [redisGroup, jetstream].filter((r): r is ReferenceSeries => r !== undefined);
  if (s.phases.has('kcat') || s.phases.has('kafkajs') || s.phases.has('group')) {
    const inputFile = path.join(inputDir(cleanup), 'records.txt');
    if (s.phases.has('kcat')) writeLinesFile(inputFile, s.records);
    f.broker = await runBroker(s, inputFile, cleanup, references);
  }
  // Without the group phase, the references' end-to-end runs are interleaved among themselves.
  if (!s.phases.has('group') && references.length > 0) await interleaveE2e(s, references.map((r) => r.series));
  if (redisGroup) f.redisGroup = referenceFigures(redisGroup);
  if (jetstream) f.jetstream = referenceFigures(jetstream);

  const rows = comparisons(s, f);
  printDetails(s, f);
  printE2eTable(s, f);
  say('');
  say('ratios and targets are taken against the ioredis figures (the raw-RESP rows are info: the best-case client) and, end to end, against the Redis Streams group and JetStream runs');
  say(rows.length > 0 ? comparisonTable(rows) : '(no Spillway figure among the selected phases, so nothing to compare)');
  const misses = rows.filter((r) => r.pass === false).length;
  const unevaluated = rows.filter((r) => r.target !== '-' && r.pass === null).length;
  say(`${misses === 0 ? 'all evaluated targets met' : `${misses} target(s) missed`}${unevaluated > 0 ? `; ${unevaluated} target(s) not evaluated (reference phase not run)` : ''}`);
  const file = writeJson(OUT_DIR, startedAt, {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    brokerCode: code,
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? null, loadAvgAtStart: load, loadAvgAtEnd: os.loadavg(), node: process.version },
    settings: {
      ...s,
      phases: [...s.phases],
      recordBytes: RECORD_BYTES,
      partitions: PARTITIONS,
      brokerFsync: 'always',
      kcatProduceSettings: KCAT_PRODUCE_SETTINGS,
      kcatConsumeSettings: KCAT_CONSUME_SETTINGS,
      kcatReaderWrapping: kcatReaderWrapping(),
      e2e: { chunk: E2E_CHUNK, consumerBatch: E2E_CONSUMER_BATCH, kafkaMaxWaitMs: E2E_KAFKA_MAX_WAIT_MS, redisBlockMs: E2E_REDIS_BLOCK_MS, jetstreamExpiresMs: E2E_JETSTREAM_EXPIRES_MS, partitions: E2E_PARTITIONS, warmupRecords: s.groupWarmup },
      targets: TARGETS,
      issueFigures: ISSUE_FIGURES,
    },
    ...f,
    comparisons: rows,
  });
  say(`load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (other work on the machine shows here; it was ${load.map((l) => l.toFixed(2)).join(' ')} at the start)`);
  say(`results: ${path.relative(process.cwd(), file)}`);
}

async function main(): Promise<number> {
  const cleanup = new Cleanup();
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`bench: ${signal}, cleaning up\n`);
    void cleanup.run().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let status = 0;
  try {
    await run(readSettings(process.env), cleanup);
  } catch (err) {
    status = 1;
    const code = err instanceof BenchError ? err.code : 'UNEXPECTED';
    const detail = err instanceof BenchError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`bench failed [${code}]: ${detail}\n`);
  } finally {
    for (const f of await cleanup.run()) process.stderr.write(`cleanup: ${f}\n`);
  }
  return status;
}

process.exitCode = await main();
