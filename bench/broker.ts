/**
 * `npm run bench:broker`: durable-append and read-back throughput of the buffer broker, side by
 * side with Redis Streams measured in the same run on the same machine and disk.
 *
 * What is measured, and why:
 * - kcat (librdkafka, C) produces N records of 300 bytes with acks=-1 to a 12-partition topic on
 *   a broker running with --fsync always, then reads them all back. A C client is cheap, so these
 *   figures are the broker's own limits. Wall time is spawn-to-exit: kcat -P exits only once
 *   every message is acknowledged, i.e. durable; kcat -C -e exits at the end of every partition.
 *   Ending with -e costs one empty long poll (fetch.wait.max.ms, 500 ms), so the topic is read a
 *   second time with -c N (exit at the N-th record) to show that fixed cost; that row is info.
 * - kafkajs (what Spillway itself uses) produces another N records: several producers, several
 *   send() calls of 1,000 records in flight each, in one process by default (kafkajs encodes in
 *   JS, so a process tops out near one core; BENCH_KAFKAJS_PROCESSES spreads the producers).
 *   Per-send latency gives the produce p50/p99. kafkajs cannot consume without consumer groups,
 *   which this broker does not serve yet (issue 3), so that topic is read back with kcat: it
 *   verifies the data, and the kafkajs consumer figure is reported as n/a.
 * - Redis, the alternative being argued against: redis-server with appendonly yes and
 *   appendfsync always, XADD of the same payloads pipelined 1,000 per round trip, then XRANGE
 *   back 1,000 per request (bench/lib/resp.ts, a minimal pipelining client). Every ratio is
 *   taken against these same-run figures, never against a remembered number.
 * - The broker's RSS is sampled every 100 ms for its whole life (plus the kernel's VmHWM); CPU
 *   use of broker, bench and machine is printed per phase, to show which side was the limit.
 * Every read-back checks that each record index came back exactly once, and after each produce
 * the broker's log end offsets must add up to N. MB = 10^6 payload bytes.
 *
 * Settings (env): BENCH_RECORDS (default 1000000), BENCH_KAFKAJS_PROCESSES (1),
 * BENCH_KAFKAJS_PRODUCERS (4 per process), BENCH_KAFKAJS_IN_FLIGHT (2 per producer),
 * BENCH_KAFKAJS_BATCH (1000), BENCH_REDIS_PIPELINE (1000), BENCH_PHASE_TIMEOUT_S (900),
 * BENCH_KCAT (kcat), BENCH_REDIS_SERVER (/usr/bin/redis-server).
 * Exit status: 0 when every phase ran and every read-back was exact (targets are reported, not
 * enforced), 1 otherwise. Results also go to bench/out/broker-<timestamp>.json.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuMark, cpuUse, type CpuUse } from './lib/cpu.ts';
import { kafkajsProduceFleet } from './lib/kafkajs-fleet.ts';
import { createTopics } from './lib/kafkajs-produce.ts';
import { KCAT_PRODUCE_SETTINGS, kcatConsume, kcatProduce, verifyReadBack } from './lib/kcat.ts';
import { BenchError, Cleanup, makeTempDir, startBroker, startRedis, type BrokerProcess } from './lib/procs.ts';
import { phaseMetrics, scrape, sumOf, type PhaseMetrics } from './lib/prom.ts';
import { RECORD_BYTES, writeLinesFile, type ReadBackSummary } from './lib/records.ts';
import { redisAppend, redisReadBack } from './lib/redis-streams.ts';
import { comparisonTable, fmt, latency, limitRow, ratioRow, throughput, writeJson, type Comparison, type Latency, type Throughput } from './lib/report.ts';
import { RespClient } from './lib/resp.ts';
import { readRss, RssSampler } from './lib/rss.ts';

const PARTITIONS = 12;
const TARGETS = { kcatProduceVsXadd: 4, kcatReadVsXrange: 5, kafkajsProduceVsXadd: 2, brokerRssMb: 300 } as const;
/** Durable XADDs/s the issue measured on this machine; printed for context, never compared. */
const ISSUE_REDIS_APPENDS_PER_SEC = 41_000;
const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(BENCH_DIR, '..');
const OUT_DIR = path.join(BENCH_DIR, 'out');

interface Settings {
  records: number;
  kafkajsProcesses: number;
  kafkajsProducers: number;
  kafkajsInFlight: number;
  kafkajsBatch: number;
  redisPipeline: number;
  phaseTimeoutMs: number;
  kcat: string;
  redisServer: string;
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
  const settings: Settings = {
    records: int('BENCH_RECORDS', 1_000_000, 1, 100_000_000),
    kafkajsProcesses: int('BENCH_KAFKAJS_PROCESSES', 1, 1, 32),
    kafkajsProducers: int('BENCH_KAFKAJS_PRODUCERS', 4, 1, 64),
    kafkajsInFlight: int('BENCH_KAFKAJS_IN_FLIGHT', 2, 1, 64),
    kafkajsBatch: int('BENCH_KAFKAJS_BATCH', 1000, 1, 100_000),
    redisPipeline: int('BENCH_REDIS_PIPELINE', 1000, 1, 100_000),
    phaseTimeoutMs: int('BENCH_PHASE_TIMEOUT_S', 900, 10, 86_400) * 1000,
    kcat: env.BENCH_KCAT ?? 'kcat',
    redisServer: env.BENCH_REDIS_SERVER ?? '/usr/bin/redis-server',
  };
  if (problems.length > 0) throw new BenchError('BAD_SETTINGS', `bad settings:\n  ${problems.join('\n  ')}`);
  return settings;
}

function kafkajsShape(s: Settings): string {
  const procs = s.kafkajsProcesses === 1 ? '1 process' : `${s.kafkajsProcesses} processes`;
  return `${procs} x ${s.kafkajsProducers} producers x ${s.kafkajsInFlight} sends in flight, ${s.kafkajsBatch} records/send`;
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function describe(label: string, t: Throughput): string {
  return `${label}: ${fmt(t.records)} records in ${fmt(t.ms / 1000, 2)} s = ${fmt(t.recordsPerSec)} records/s, ${fmt(t.mbPerSec, 1)} MB/s`;
}

function requireComplete(label: string, check: ReadBackSummary): void {
  if (!check.ok) throw new BenchError('READ_BACK_INCOMPLETE', `${label}: read-back is not exact: ${JSON.stringify(check)}`);
}

interface RedisFigures {
  version: string;
  append: Throughput;
  appendLatency: Latency;
  read: Throughput;
  readRequests: number;
  readCheck: ReadBackSummary;
  peakRssBytes: number;
}

async function redisVersion(client: RespClient): Promise<string> {
  const info = await client.command(['INFO', 'server']);
  const text = Buffer.isBuffer(info) ? info.toString('latin1') : '';
  return /redis_version:(\S+)/.exec(text)?.[1] ?? 'unknown';
}

async function runRedis(s: Settings, cleanup: Cleanup): Promise<RedisFigures> {
  const redis = await startRedis({ cleanup, binary: s.redisServer });
  const client = await RespClient.connect(redis.port);
  cleanup.add('redis client', () => client.close());
  const version = await redisVersion(client);
  say(`redis-server ${version} on port ${redis.port} (appendonly yes, appendfsync always, save '', dir ${redis.dir})`);
  const key = 'spillway-bench';
  const a = await redisAppend(client, key, s.records, s.redisPipeline);
  const append = throughput(s.records, a.ms);
  const appendLatency = latency(a.latenciesMs);
  say(`${describe(`redis XADD (pipelines of ${s.redisPipeline})`, append)}; pipeline round trip p50 ${fmt(appendLatency.p50Ms, 1)} ms, p99 ${fmt(appendLatency.p99Ms, 1)} ms`);
  const r = await redisReadBack(client, key, s.records, 1000);
  requireComplete('redis XRANGE', r.check);
  const read = throughput(s.records, r.ms);
  say(`${describe('redis XRANGE (COUNT 1000)', read)}; ${r.requests} requests, every record back exactly once`);
  const peakRssBytes = readRss(redis.pid)?.hwmBytes ?? 0;
  await client.close();
  await redis.stop();
  return { version, append, appendLatency, read, readRequests: r.requests, readCheck: r.check, peakRssBytes };
}

type KcatRead = Throughput & { command: string; bytes: number; check: ReadBackSummary; broker: PhaseMetrics; cpu: CpuUse };
type Measured<T> = { result: T; broker: PhaseMetrics; cpu: CpuUse };

interface BrokerFigures {
  kcatProduce: Throughput & { command: string; broker: PhaseMetrics; cpu: CpuUse };
  kcatRead: KcatRead;
  kcatReadCount: KcatRead;
  kafkajsProduce: Throughput & { sends: number; latency: Latency; broker: PhaseMetrics; cpu: CpuUse; producerCores: number };
  kafkajsTopicRead: KcatRead;
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

/**
 * Runs one phase between two metric scrapes and two CPU marks (the scrapes stay outside the
 * timed window), attributing RSS samples to it. The broker must be alive before and after.
 */
function phaseMeasurer(broker: BrokerProcess, rss: RssSampler) {
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
    say(`  cpu during ${phase}: broker ${fmt(cpu.brokerCores, 2)} cores, bench process ${fmt(cpu.benchCores, 2)} cores, machine ${fmt(cpu.machineBusyFraction * 100)}% busy (${os.cpus().length} cores)`);
    return { result, broker: phaseMetrics(before, after), cpu };
  };
}

async function kcatProducePhase(c: PhaseContext): Promise<BrokerFigures['kcatProduce']> {
  const m = await c.measure('kcat produce', () => kcatProduce({ kcat: c.s.kcat, bootstrap: c.bootstrap, topic: KCAT_TOPIC, inputFile: c.inputFile, timeoutMs: c.s.phaseTimeoutMs }));
  await verifyLogEnd(c.broker, KCAT_TOPIC, c.s.records);
  const t = throughput(c.s.records, m.result.ms);
  say(`${describe('kcat produce', t)}; ${fmt(m.broker.produceRequests)} Produce requests, ${fmt(m.broker.fsyncRounds)} fsync rounds`);
  return { ...t, command: m.result.command, broker: m.broker, cpu: m.cpu };
}

async function kcatReadPhase(c: PhaseContext, topic: string, until: 'eof' | 'count', label: string): Promise<KcatRead> {
  const m = await c.measure(label, () => kcatConsume({ kcat: c.s.kcat, bootstrap: c.bootstrap, topic, expected: c.s.records, until, outputFile: c.readFile, timeoutMs: c.s.phaseTimeoutMs }));
  const v = verifyReadBack(c.readFile, c.s.records);
  requireComplete(label, v.check);
  const t = throughput(c.s.records, m.result.ms);
  say(`${describe(label, t)}; ${fmt(m.broker.fetchRequests)} Fetch requests, every record back exactly once`);
  return { ...t, command: m.result.command, bytes: v.bytes, check: v.check, broker: m.broker, cpu: m.cpu };
}

async function kafkajsProducePhase(c: PhaseContext): Promise<BrokerFigures['kafkajsProduce']> {
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

async function runBroker(s: Settings, inputFile: string, cleanup: Cleanup): Promise<BrokerFigures> {
  const broker = await startBroker({ fsync: 'always', logLevel: 'info', cleanup });
  const rss = new RssSampler(broker.pid, 100);
  rss.start();
  cleanup.add('rss sampler', () => rss.stop());
  const bootstrap = `127.0.0.1:${broker.port}`;
  say(`broker pid ${broker.pid} on ${bootstrap} (metrics :${broker.metricsPort}, --fsync always, data ${broker.dataDir})`);
  await createTopics(bootstrap, [KCAT_TOPIC, KAFKAJS_TOPIC], PARTITIONS);
  const readFile = path.join(path.dirname(inputFile), 'read-back.txt');
  const c: PhaseContext = { s, broker, bootstrap, inputFile, readFile, cleanup, measure: phaseMeasurer(broker, rss) };

  const kcatProduceF = await kcatProducePhase(c);
  const kcatRead = await kcatReadPhase(c, KCAT_TOPIC, 'eof', 'kcat read-back (-e)');
  const kcatReadCount = await kcatReadPhase(c, KCAT_TOPIC, 'count', 'kcat read-back (-c N: exits at the N-th record)');
  const kafkajsProduce = await kafkajsProducePhase(c);
  const kafkajsTopicRead = await kcatReadPhase(c, KAFKAJS_TOPIC, 'eof', 'kafkajs topic read-back (kcat -e)');
  rss.stop();
  const hwmBytes = Math.max(readRss(broker.pid)?.hwmBytes ?? 0, rss.lastHwmBytes);
  const stop = await broker.stop();
  return {
    kcatProduce: kcatProduceF,
    kcatRead,
    kcatReadCount,
    kafkajsProduce,
    kafkajsTopicRead,
    rss: { peakSampledBytes: rss.peakBytes, hwmBytes, samples: rss.samples, perPhaseBytes: Object.fromEntries(rss.phasePeaks) },
    problems: [...broker.problems],
    stop,
  };
}

function comparisons(s: Settings, r: RedisFigures, b: BrokerFigures): Comparison[] {
  const peakRssMb = Math.max(b.rss.peakSampledBytes, b.rss.hwmBytes) / 1e6;
  const send = `kafkajs send() of ${s.kafkajsBatch}`;
  const pipe = `XADD x${s.redisPipeline}`;
  return [
    ratioRow('kcat produce', b.kcatProduce.recordsPerSec, 'rec/s', 'XADD/s', r.append.recordsPerSec, TARGETS.kcatProduceVsXadd),
    ratioRow('kcat produce', b.kcatProduce.mbPerSec, 'MB/s', 'XADD MB/s', r.append.mbPerSec, null),
    ratioRow('kcat read-back (-e)', b.kcatRead.recordsPerSec, 'rec/s', 'XRANGE rec/s', r.read.recordsPerSec, TARGETS.kcatReadVsXrange),
    ratioRow('kcat read-back (-e)', b.kcatRead.mbPerSec, 'MB/s', 'XRANGE MB/s', r.read.mbPerSec, null),
    ratioRow('kcat read-back (-c N)', b.kcatReadCount.recordsPerSec, 'rec/s', 'XRANGE rec/s', r.read.recordsPerSec, null),
    ratioRow('kafkajs produce', b.kafkajsProduce.recordsPerSec, 'rec/s', 'XADD/s', r.append.recordsPerSec, TARGETS.kafkajsProduceVsXadd),
    ratioRow('kafkajs produce', b.kafkajsProduce.mbPerSec, 'MB/s', 'XADD MB/s', r.append.mbPerSec, null),
    ratioRow(`${send} p50 (lower=better)`, b.kafkajsProduce.latency.p50Ms, 'ms', `${pipe} p50`, r.appendLatency.p50Ms, null),
    ratioRow(`${send} p99 (lower=better)`, b.kafkajsProduce.latency.p99Ms, 'ms', `${pipe} p99`, r.appendLatency.p99Ms, null),
    ratioRow('kafkajs topic read-back (kcat -e)', b.kafkajsTopicRead.recordsPerSec, 'rec/s', 'XRANGE rec/s', r.read.recordsPerSec, null),
    limitRow('broker peak RSS', peakRssMb, 'MB', TARGETS.brokerRssMb),
  ];
}

function printDetails(s: Settings, r: RedisFigures, b: BrokerFigures): void {
  const ms = (n: number) => `${fmt(n, 1)} ms`;
  say('');
  say(`records: ${fmt(s.records)} x ${RECORD_BYTES} B; topics: ${PARTITIONS} partitions; broker --fsync always`);
  say(`kcat produce settings: ${Object.entries(KCAT_PRODUCE_SETTINGS).map(([k, v]) => `${k}=${v}`).join(', ')} (other librdkafka settings default)`);
  say(`kafkajs: ${kafkajsShape(s)}, keyless records (default partitioner: round-robin), acks=-1, no compression, retries 0`);
  say(`kafkajs producing processes used ${fmt(b.kafkajsProduce.producerCores, 2)} cores, the broker ${fmt(b.kafkajsProduce.cpu.brokerCores, 2)}; machine ${fmt(b.kafkajsProduce.cpu.machineBusyFraction * 100)}% busy`);
  say(`produce latency: kafkajs send() of ${s.kafkajsBatch} records p50 ${ms(b.kafkajsProduce.latency.p50Ms)}, p99 ${ms(b.kafkajsProduce.latency.p99Ms)}, max ${ms(b.kafkajsProduce.latency.maxMs)} (${b.kafkajsProduce.sends} sends)`);
  for (const [label, m] of [
    ['kcat produce', b.kcatProduce.broker],
    ['kafkajs produce', b.kafkajsProduce.broker],
  ] as const) {
    say(
      `broker-side ${label}: ${fmt(m.produceRequests)} Produce requests, p50 ${ms(m.produceP50Ms)}, p99 ${ms(m.produceP99Ms)} (histogram-interpolated); ` +
        `${fmt(m.fsyncRounds)} fsync rounds (${fmt(m.fsyncFiles)} files), fsync p50 ${ms(m.fsyncP50Ms)}, p99 ${ms(m.fsyncP99Ms)}`,
    );
  }
  say(`redis: ${r.version}; XADD pipeline of ${s.redisPipeline} round trip p50 ${ms(r.appendLatency.p50Ms)}, p99 ${ms(r.appendLatency.p99Ms)}; peak RSS ${fmt(r.peakRssBytes / 1e6, 1)} MB`);
  say(`(the issue measured ~${fmt(ISSUE_REDIS_APPENDS_PER_SEC)} durable XADDs/s on this machine; this run: ${fmt(r.append.recordsPerSec)})`);
  const phases = Object.entries(b.rss.perPhaseBytes).map(([p, v]) => `${p} ${fmt(v / 1e6, 1)}`);
  say(`broker RSS (MB): peak sampled ${fmt(b.rss.peakSampledBytes / 1e6, 1)} over ${b.rss.samples} samples, VmHWM ${fmt(b.rss.hwmBytes / 1e6, 1)}; by phase: ${phases.join(', ')}`);
  say(`broker stop: ${b.stop}; warnings/errors logged: ${b.problems.length}`);
  for (const p of b.problems.slice(0, 20)) say(`  ${p}`);
  say('kafkajs consumer read-back: n/a (consumer groups arrive in issue 3); its topic was read back with kcat instead');
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
  say(`spillway broker bench: ${fmt(s.records)} records of ${RECORD_BYTES} B; ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load ${load.map((l) => l.toFixed(2)).join(' ')}, node ${process.version}`);
  const code = provenance();
  const dirty = code.uncommittedBrokerFiles.length;
  say(`broker code: ${code.commit}${dirty === 0 ? '' : ` + ${dirty} uncommitted change(s) under buffer-broker/src, lib/src, bin (listed in the JSON)`}`);
  const inputFile = path.join(inputDir(cleanup), 'records.txt');
  writeLinesFile(inputFile, s.records);

  const redis = await runRedis(s, cleanup);
  const broker = await runBroker(s, inputFile, cleanup);
  const rows = comparisons(s, redis, broker);
  printDetails(s, redis, broker);
  say('');
  say(comparisonTable(rows));
  const misses = rows.filter((r) => r.pass === false).length;
  say(misses === 0 ? 'all targets met' : `${misses} target(s) missed`);
  const file = writeJson(OUT_DIR, startedAt, {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    brokerCode: code,
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? null, loadAvgAtStart: load, loadAvgAtEnd: os.loadavg(), node: process.version },
    settings: { ...s, recordBytes: RECORD_BYTES, partitions: PARTITIONS, brokerFsync: 'always', kcatProduceSettings: KCAT_PRODUCE_SETTINGS, targets: TARGETS },
    redis,
    broker,
    kafkajsConsumerReadBack: 'n/a: consumer groups arrive in issue 3; the kafkajs topic was read back with kcat',
    comparisons: rows,
  });
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
