/**
 * Drainer benchmark: end-to-end deliveries/s from a pre-filled backlog to an unlimited simulator
 * with one and with two drainer processes, next to a bare kafkajs consumer that POSTs each record
 * to the same simulator (the reference, measured in the same run); then rate accuracy at 100,
 * 1,000 and 5,000/s (worst 1-second window and the one-minute average, from the simulator's
 * per-second ledger); drainer RSS sampled every 200 ms throughout.
 *
 *   npm run bench:drainer
 *   BENCH_ORDERS=20000 BENCH_ACCURACY_SECONDS=10 npm run bench:drainer      # quick
 *
 * Env: BENCH_ORDERS (200000), BENCH_ACCURACY_SECONDS (60), BENCH_RATES (100,1000,5000),
 * BENCH_THROUGHPUT_PASSES (3: bare and ×1 runs, alternated; the median of each is reported),
 * BENCH_PHASES (throughput,accuracy; or any of bare,x1,x2,rss,accuracy), BENCH_DRAINER_CONCURRENCY
 * (BENCH_BARE_IN_FLIGHT: the same in flight as the reference), BENCH_BARE_IN_FLIGHT (64),
 * BENCH_PROFILE=1 (run the one-process drainer under --cpu-prof and print its hot spots between
 * ready and the last delivery).
 *
 * Every run uses a fresh downstream name (so a fresh consumer group and BullMQ queue), a flushed
 * Redis and a reset simulator ledger; "unlimited" is rate 1e6/s, burst 100,000. Deliveries/s
 * is distinct keys received over the time from the first delivery to the last (process start-up
 * and group join excluded), and every run must deliver every order.
 *
 * "RSS flat whatever the backlog" is checked against the same one-process drainer draining a
 * backlog ten times smaller (phase rss): its peak RSS is the reference. Alongside: peak V8 heap
 * in use (the drainer's /metrics), peak jobs pending in BullMQ (the window; a job carries up to 100
 * orders, see drainer/src/pump.ts), Redis commands per
 * delivery (INFO commandstats), and CPU seconds of every process per 1,000 deliveries, which on
 * a shared machine says more than deliveries/s (the "CPU-bound ceiling" divides the machine's
 * cores by the whole pipeline's CPU per delivery).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { Kafka, logLevel, type Admin, type Producer } from 'kafkajs';
import { repoRoot, startRedis, waitFor, type RedisProcess } from '../lib/src/testing/processes.ts';
import { medianBy } from './lib/report.ts';
import { produceOrders } from './drainer/orders.ts';
import { monotonicMicros, printProfile, summariseProfile, type ProfileSummary } from './drainer/profile.ts';
import { HeapSampler, RssSampler, startBare, startBroker, startDrainer, stopProcess, writeDrainerConfig, type BareProcess, type BareSummary, type BrokerProcess, type DrainerProcess, type RssFigures } from './drainer/procs.ts';
import { cpuSeconds, fmt, pct, printTable, rateAccuracy, writeJson, type RateAccuracy, type Row } from './drainer/report.ts';
import { StatsPoller, startSimulator, type Simulator, type Stats } from './drainer/sim.ts';

function intEnv(name: string, dflt: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return n;
}

const ORDERS = intEnv('BENCH_ORDERS', 200_000);
const ACCURACY_S = intEnv('BENCH_ACCURACY_SECONDS', 60);
const RATES = (process.env.BENCH_RATES ?? '100,1000,5000').split(',').map((r) => {
  const n = Number(r);
  if (!(n > 0 && n <= 1_000_000)) throw new Error(`BENCH_RATES: ${r} is not a rate in (0, 1e6]`);
  return n;
});
/** bare, x1, x2, rss (the ten-times-smaller backlog), accuracy; "throughput" = bare,x1,x2,rss. */
const PHASES = new Set((process.env.BENCH_PHASES ?? 'throughput,accuracy').split(',').flatMap((p) => (p === 'throughput' ? ['bare', 'x1', 'x2', 'rss'] : [p])));
const BARE_IN_FLIGHT = intEnv('BENCH_BARE_IN_FLIGHT', 64);
/**
 * Passes of the bare reference and of the one-process drainer, alternated (bare, ×1, bare, ×1,
 * ...) so that both see the same drift of a shared machine; the median pass of each is what
 * counts. On a 2-core VM the bare consumer alone gave 16,293/s and 25,091/s the same day.
 */
const THROUGHPUT_PASSES = intEnv('BENCH_THROUGHPUT_PASSES', 3);
/** Deliveries in flight per drainer process: by default as many as the bare reference keeps in flight, so both are measured the same way. */
const CONCURRENCY = intEnv('BENCH_DRAINER_CONCURRENCY', BARE_IN_FLIGHT);
const PROFILE = process.env.BENCH_PROFILE === '1';
const TRACE_QUEUE = process.env.BENCH_TRACE_QUEUE === '1';

const PARTITIONS = 12;
const UNLIMITED = { rate: 1_000_000, burst: 100_000 };
/** Seconds after the first delivery of a rate run before its measured window starts. */
const WARMUP_S = 3;
/** A run that delivers nothing new for this long has stalled. */
const STALL_MS = 30_000;

/** Targets from the spec. */
const TARGET_ONE_PROCESS = 3000;
const TARGET_VS_BARE = 0.5;
const TARGET_RATE_ERROR = 0.03;
/** "Flat" RSS: peak RSS draining a backlog may exceed the peak on a backlog ten times smaller by at most this much. */
const TARGET_RSS_GROWTH_MB = 50;

const outDir = path.join(repoRoot, 'bench/out');
const runId = Date.now().toString(36);

interface Stack {
  redisProc: RedisProcess;
  redis: Redis;
  broker: BrokerProcess;
  admin: Admin;
  producer: Producer;
  sim: Simulator;
}

function cpuOf(pids: readonly number[]): number {
  return pids.reduce((n, pid) => n + (cpuSeconds(pid) ?? 0), 0);
}

interface ThroughputRun {
  label: string;
  /** 1-based pass of a label that runs several times (bare, drainer-x1). */
  pass: number;
  kind: 'bare' | 'drainer';
  processes: number;
  name: string;
  expected: number;
  delivered: number;
  complete: boolean;
  duplicates: number;
  byStatus: Record<string, number>;
  /** First to last delivery. */
  seconds: number;
  deliveriesPerSecond: number;
  /** Seconds from the first delivery until the last process reported ready (×2: one process ran alone meanwhile). */
  startSkewSeconds: number;
  /** Deliveries/s counted from the moment every process was running. */
  allRunningPerSecond: number;
  /** Most jobs waiting/active/delayed in the BullMQ queue at once (the window; the rest should stay in the log). */
  peakPendingJobs: number | null;
  /** Redis commands per delivery by command (INFO commandstats; the bench's own sampling included, a few per second). */
  redisCommandsPerDelivery: Record<string, number>;
  rss: RssFigures[];
  /** Peak V8 heap in use per drainer process (sampled each second from its /metrics). */
  heapPeakMb: number[];
  redisRss: RssFigures;
  /** CPU seconds: the consumer process(es) from ready to done, the others from spawn to done. */
  cpu: Record<string, number>;
  bare?: BareSummary;
  profile?: ProfileSummary;
}

/** Calls per command since the last CONFIG RESETSTAT. */
async function commandStats(redis: Redis): Promise<Record<string, number>> {
  const text = await redis.info('commandstats');
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]] = Number(m[2]);
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until the poller saw every order; throws if deliveries stall for STALL_MS. */
async function waitDelivered(poller: StatsPoller, expected: number): Promise<void> {
  let lastCount = -1;
  let lastChange = Date.now();
  while (poller.doneAt === undefined) {
    poller.check();
    const n = poller.last?.distinctKeys ?? 0;
    if (n !== lastCount) {
      lastCount = n;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > STALL_MS) {
      throw new Error(`stalled at ${n}/${expected} delivered`);
    }
    await sleep(100);
  }
}

/** Samples the number of pending jobs of a downstream's BullMQ queue every 200 ms; stop() gives the peak. */
function pendingSampler(redis: Redis, downstream: string): { stop(): number } {
  const k = (t: string) => `spw:bull:deliver-${downstream}:${t}`;
  let peak = 0;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    redis
      .pipeline()
      .llen(k('wait'))
      .llen(k('active'))
      .zcard(k('delayed'))
      .zcard(k('prioritized'))
      .exec()
      .then(
        (res) => {
          const n = (res ?? []).reduce((sum, [, v]) => sum + (typeof v === 'number' ? v : 0), 0);
          peak = Math.max(peak, n);
        },
        () => undefined,
      )
      .finally(() => (busy = false));
  }, 200);
  return {
    stop: () => {
      clearInterval(timer);
      return peak;
    },
  };
}

async function throughputRun(s: Stack, topic: string, orders: number, label: string, kind: 'bare' | 'drainer', processes: number, profileDir?: string, pass = 1): Promise<ThroughputRun> {
  // A fresh name per pass: a fresh consumer group (and queue), so every pass drains the whole backlog.
  const name = pass === 1 ? `${label}-${runId}` : `${label}-p${pass}-${runId}`;
  await s.redis.flushall();
  await s.redis.config('RESETSTAT');
  await s.sim.reset();
  const poller = new StatsPoller(s.sim, orders, 100);
  poller.start();
  const infraPids = { simulator: s.sim.proc.proc.pid ?? 0, broker: s.broker.proc.pid ?? 0, redis: s.redisProc.proc.pid ?? 0 };
  const infraBefore = Object.fromEntries(Object.entries(infraPids).map(([k, pid]) => [k, cpuOf([pid])]));
  const benchBefore = process.cpuUsage();
  const redisRss = new RssSampler(infraPids.redis).start();
  const pending = kind === 'drainer' ? pendingSampler(s.redis, name) : undefined;
  let drainers: DrainerProcess[] = [];
  let bare: BareProcess | undefined;
  const samplers: RssSampler[] = [];
  const heaps: HeapSampler[] = [];
  let config: string | undefined;
  let heapPeakMb: number[] = [];
  let complete = true;
  let allReady = { at: Number.NaN, delivered: 0 };
  const cpu: Record<string, number> = {};
  const window = { fromUs: 0, toUs: 0 };
  let redisCommands: Record<string, number> = {};
  let rss: RssFigures[] = [];
  let rRss: RssFigures | undefined;
  let peakPendingJobs: number | null = null;
  let bareSummary: BareSummary | undefined;
  try {
    if (kind === 'bare') {
      bare = await startBare({ brokers: s.broker.bootstrap, topic, group: name, url: s.sim.ordersUrl, inFlight: BARE_IN_FLIGHT });
      samplers.push(new RssSampler(bare.pid).start());
    } else {
      config = writeDrainerConfig([{ name, url: s.sim.ordersUrl, topic, rate: UNLIMITED.rate, burst: UNLIMITED.burst, concurrency: CONCURRENCY }]);
      const file = config;
      const started = await Promise.allSettled(
        Array.from({ length: processes }, async () => {
          const d = await startDrainer({ config: file, redisUrl: s.redisProc.url, kafkaBrokers: s.broker.bootstrap, cpuProfDir: profileDir });
          samplers.push(new RssSampler(d.pid).start());
          heaps.push(new HeapSampler(d.metricsPort).start());
          return d;
        }),
      );
      drainers = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      const failed = started.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    }
    const consumers: (DrainerProcess | BareProcess)[] = bare ? [bare] : drainers;
    allReady = { at: Math.max(...consumers.map((c) => c.readyAt)), delivered: (await poller.poll())?.distinctKeys ?? 0 };
    window.fromUs = monotonicMicros();
    try {
      await waitDelivered(poller, orders);
    } catch (err) {
      complete = false;
      console.error(`  ${label}: ${(err as Error).message}`);
    }
    window.toUs = monotonicMicros();
    redisCommands = await commandStats(s.redis);
    cpu.consumer = consumers.reduce((n, c) => n + ((cpuSeconds(c.pid) ?? c.cpuAtReady) - c.cpuAtReady), 0);
    for (const [k, pid] of Object.entries(infraPids)) cpu[k] = cpuOf([pid]) - infraBefore[k];
    const b = process.cpuUsage(benchBefore);
    cpu.bench = (b.user + b.system) / 1e6;
  } finally {
    poller.stop();
    rss = samplers.map((x) => x.stop());
    heapPeakMb = heaps.map((h) => h.stop());
    rRss = redisRss.stop();
    peakPendingJobs = pending?.stop() ?? null;
    bareSummary = await bare?.stop();
    await Promise.all(drainers.map((d) => stopProcess(d)));
    if (config !== undefined) fs.rmSync(path.dirname(config), { recursive: true, force: true });
  }
  // Anything delivered while stopping is counted too (as duplicates, if it was redelivered).
  const last: Stats = (await poller.poll()) ?? poller.last ?? (await s.sim.stats());
  const seconds = poller.firstAt !== undefined && poller.doneAt !== undefined ? (poller.doneAt - poller.firstAt) / 1000 : Number.NaN;
  const fromAll = poller.firstAt !== undefined && allReady.at > poller.firstAt ? allReady : { at: poller.firstAt ?? Number.NaN, delivered: 0 };
  const run: ThroughputRun = {
    label,
    pass,
    kind,
    processes,
    name,
    expected: orders,
    delivered: last.distinctKeys,
    complete: complete && last.distinctKeys === orders,
    duplicates: last.duplicates,
    byStatus: last.byStatus,
    seconds,
    deliveriesPerSecond: orders / seconds,
    startSkewSeconds: poller.firstAt !== undefined ? Math.max(0, (allReady.at - poller.firstAt) / 1000) : Number.NaN,
    allRunningPerSecond: poller.doneAt !== undefined ? (orders - fromAll.delivered) / ((poller.doneAt - fromAll.at) / 1000) : Number.NaN,
    peakPendingJobs,
    redisCommandsPerDelivery: Object.fromEntries(Object.entries(redisCommands).map(([k, v]) => [k, v / orders])),
    rss,
    heapPeakMb,
    redisRss: rRss,
    cpu,
    bare: bareSummary,
  };
  if (profileDir !== undefined) {
    const files = fs.existsSync(profileDir) ? fs.readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile')) : [];
    // One file per thread; the main thread's is the large one (the other is tsx's loader thread).
    const main = files.map((f) => path.join(profileDir, f)).sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0];
    if (main !== undefined) run.profile = summariseProfile(main, { fromUs: window.fromUs, toUs: window.toUs });
  }
  printRun(run);
  return run;
}

function printRun(r: ThroughputRun): void {
  const rss = r.rss.map((x, i) => `${fmt(x.startMb)}→${fmt(x.peakMb)} MB${r.heapPeakMb[i] !== undefined ? ` (heap peak ${fmt(r.heapPeakMb[i])} MB)` : ''}`).join(', ');
  const cpu = Object.entries(r.cpu)
    .map(([k, v]) => `${k} ${v.toFixed(1)}`)
    .join(', ');
  const skew = r.processes > 1 ? `, ${fmt(r.allRunningPerSecond)}/s once all ${r.processes} ran (last ready ${r.startSkewSeconds.toFixed(1)} s after the first delivery)` : '';
  const pending = r.peakPendingJobs === null ? '' : `, peak BullMQ pending ${fmt(r.peakPendingJobs)} jobs`;
  const cmds = Object.entries(r.redisCommandsPerDelivery)
    .filter(([, v]) => v >= 0.01)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v.toFixed(2)}`)
    .join(', ');
  console.log(
    `  ${(THROUGHPUT_PASSES > 1 && (r.label === 'bare' || r.label === 'drainer-x1') ? `${r.label} #${r.pass}` : r.label).padEnd(14)} ${fmt(r.deliveriesPerSecond)} deliveries/s (${fmt(r.delivered)}/${fmt(r.expected)} in ${r.seconds.toFixed(1)} s, duplicates ${r.duplicates})${skew}${pending}; RSS start→peak ${rss}, redis ${fmt(r.redisRss.startMb)}→${fmt(r.redisRss.peakMb)} MB; CPU s: ${cpu}`,
  );
  if (r.kind === 'drainer') console.log(`  ${''.padEnd(14)} redis commands per delivery: ${Object.values(r.redisCommandsPerDelivery).reduce((a, b) => a + b, 0).toFixed(1)} (${cmds})`);
}

interface AccuracyRun {
  rate: number;
  name: string;
  accuracy: RateAccuracy | null;
  ledgerMaxPerSecond: number;
  received: number;
  backlog: number;
  ranDry: boolean;
  duplicates: number;
  rss: RssFigures;
  heapPeakMb: number;
  /** Deliveries in each second from the first delivery to the measured window. */
  warmup: number[];
  /** The limiter at the end (BullMQ queue meta) and the drainer's rate-controller state. */
  limiter: Record<string, string>;
  boost: Record<string, string>;
  /** Median of the drainer's event-loop delay p99 samples (ms). */
  lagP99Ms: number;
  redisRss: RssFigures;
}

async function accuracyRun(s: Stack, topic: string, backlog: number, rate: number): Promise<AccuracyRun> {
  const name = `acc${rate}-${runId}`;
  await s.redis.flushall();
  await s.sim.reset();
  const poller = new StatsPoller(s.sim, Number.POSITIVE_INFINITY, 250);
  poller.start();
  const config = writeDrainerConfig([{ name, url: s.sim.ordersUrl, topic, rate, concurrency: CONCURRENCY }]);
  const d = await startDrainer({ config, redisUrl: s.redisProc.url, kafkaBrokers: s.broker.bootstrap }).catch((err: unknown) => {
    poller.stop();
    fs.rmSync(path.dirname(config), { recursive: true, force: true });
    throw err;
  });
  const rss = new RssSampler(d.pid).start();
  const heap = new HeapSampler(d.metricsPort, TRACE_QUEUE ? 250 : 1000).start();
  const redisRss = new RssSampler(s.redisProc.proc.pid ?? 0).start();
  let heapPeakMb = Number.NaN;
  let limiter: Record<string, string> = {};
  let boost: Record<string, string> = {};
  const warmup: number[] = [];
  let accuracy: RateAccuracy | null = null;
  let rssFig: RssFigures | undefined;
  let redisFig: RssFigures | undefined;
  // BENCH_TRACE_QUEUE=1: sample the queue every 50 ms, to tell a window that ran dry (no job
  // waiting) from a limiter or worker that fell behind (jobs waiting) in a slow second.
  const trace = new Map<number, { waitMin: number; waitMax: number; activeMin: number; activeMax: number }>();
  // The drainer's own count of deliveries per second (its rate controller's input).
  const counted = new Map<number, number>();
  if (TRACE_QUEUE) {
    await s.redis.config('SET', 'slowlog-log-slower-than', '2000');
    await s.redis.slowlog('RESET');
  }
  const traceTimer = TRACE_QUEUE
    ? setInterval(() => {
        const q = `spw:bull:deliver-${name}`;
        const sec = Math.floor(Date.now() / 1000);
        void Promise.all([s.redis.llen(`${q}:wait`), s.redis.llen(`${q}:active`), s.redis.get(`spw:downstream:${name}:delivered:${sec - 1}`)])
          .then(([w, a, c]) => {
            counted.set(sec - 1, Number(c ?? 0));
            const t = trace.get(sec);
            if (!t) trace.set(sec, { waitMin: w, waitMax: w, activeMin: a, activeMax: a });
            else Object.assign(t, { waitMin: Math.min(t.waitMin, w), waitMax: Math.max(t.waitMax, w), activeMin: Math.min(t.activeMin, a), activeMax: Math.max(t.activeMax, a) });
          })
          .catch(() => undefined);
      }, 50)
    : undefined;
  try {
    await waitFor(() => poller.buckets.size > 0, { timeoutMs: 120_000, what: `first delivery at ${rate}/s` });
    const first = Math.min(...poller.buckets.keys());
    const from = Math.max(first + WARMUP_S, Math.floor(Date.now() / 1000) + 1);
    const to = from + ACCURACY_S - 1;
    // The ledger's tail is 60 s; the poller keeps every bucket it has seen, so longer windows work.
    while (Date.now() < (to + 1) * 1000 + 500) {
      poller.check();
      await sleep(200);
    }
    await poller.poll();
    accuracy = rateAccuracy(rate, poller.buckets, from, to);
    [limiter, boost] = await Promise.all([s.redis.hgetall(`spw:bull:deliver-${name}:meta`), s.redis.hgetall(`spw:downstream:${name}:rate-boost`)]);
    for (let sec = first; sec < from; sec++) warmup.push(poller.buckets.get(sec) ?? 0);
  } finally {
    if (traceTimer) {
      clearInterval(traceTimer);
      const slow = (await s.redis.slowlog('GET', 100)) as [number, number, number, string[]][];
      for (const [, at, us, args] of slow.reverse()) console.log(`         redis slow: ${new Date(at * 1000).toISOString().slice(11, 19)} ${(us / 1000).toFixed(1)} ms ${args.slice(0, 3).join(' ').slice(0, 80)}`);
    }
    poller.stop();
    rssFig = rss.stop();
    heapPeakMb = heap.stop();
    redisFig = redisRss.stop();
    await stopProcess(d);
    fs.rmSync(path.dirname(config), { recursive: true, force: true });
    // BENCH_DRAINER_LOGS=dir: the drainer's log lines (NDJSON), e.g. with SPILLWAY_LOG_LEVEL=debug.
    const logDir = process.env.BENCH_DRAINER_LOGS;
    if (logDir !== undefined && logDir !== '') {
      fs.mkdirSync(logDir, { recursive: true });
      fs.writeFileSync(path.join(logDir, `${name}.ndjson`), d.logs.map((l) => JSON.stringify(l)).join('\n'));
    }
  }
  const last = (await poller.poll()) ?? (await s.sim.stats());
  const run: AccuracyRun = {
    rate,
    name,
    accuracy,
    ledgerMaxPerSecond: last.maxPerSecond,
    received: last.received,
    backlog,
    ranDry: last.distinctKeys >= backlog,
    duplicates: last.duplicates,
    rss: rssFig,
    heapPeakMb,
    warmup,
    redisRss: redisFig,
    limiter,
    boost,
    lagP99Ms: median(heap.lagP99Ms),
  };
  const a = run.accuracy;
  if (a) {
    console.log(
      `  ${String(rate).padStart(5)}/s  mean ${a.mean.toFixed(1)} (${pct(a.meanError)}), max ${a.max} (${pct(a.maxError)}), min ${a.min}, worst ${a.worst} (${pct(a.worstError)}), ledger max/s ${run.ledgerMaxPerSecond}, RSS ${fmt(rssFig.startMb)}→${fmt(rssFig.peakMb)} MB (heap peak ${fmt(heapPeakMb)} MB), redis ${fmt(redisFig.startMb)}→${fmt(redisFig.peakMb)} MB`,
    );
    console.log(`         per second: [warm-up ${run.warmup.join(' ')}] ${a.counts.join(' ')}`);
    if (TRACE_QUEUE) {
      for (const [sec, t] of [...trace].sort((x, y) => x[0] - y[0])) {
        console.log(`         ${new Date(sec * 1000).toISOString().slice(11, 19)} delivered ${poller.buckets.get(sec) ?? 0} (drainer counted ${counted.get(sec) ?? '?'}), jobs waiting ${t.waitMin}–${t.waitMax}, active ${t.activeMin}–${t.activeMax}, event-loop delay max ${fmt(heap.lagMaxBySecond.get(sec) ?? Number.NaN, 1)} ms`);
      }
    }
    console.log(
      `         limiter at the end: max ${run.limiter.max ?? '?'} per ${run.limiter.duration ?? '?'} ms, boost ${Number(run.boost.boost ?? Number.NaN).toFixed(3)}; drainer event-loop delay p99 (median of samples) ${fmt(run.lagP99Ms, 1)} ms`,
    );
  }
  return run;
}

function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function rows(tp: ThroughputRun[], acc: AccuracyRun[]): Row[] {
  const out: Row[] = [];
  const bares = tp.filter((r) => r.label === 'bare');
  const x1s = tp.filter((r) => r.label === 'drainer-x1');
  // The median pass of each; with an even count the one that does not flatter the drainer: the
  // faster middle reference, the slower middle drainer.
  const bare = bares.length > 0 ? medianBy(bares, (r) => r.deliveriesPerSecond) : undefined;
  const x1 = x1s.length > 0 ? medianBy(x1s, (r) => -r.deliveriesPerSecond) : undefined;
  const x2 = tp.find((r) => r.label === 'drainer-x2');
  const rate = (r: ThroughputRun) => `${fmt(r.deliveriesPerSecond)}/s${r.complete ? '' : ` (INCOMPLETE ${r.delivered}/${r.expected})`}`;
  if (bare) out.push({ figure: 'bare kafkajs consumer (reference)', value: rate(bare), reference: '-', ratio: '-', target: '-', pass: null });
  if (x1) {
    out.push({ figure: 'drainer ×1 deliveries/s', value: rate(x1), reference: '-', ratio: '-', target: `>= ${fmt(TARGET_ONE_PROCESS)}/s`, pass: x1.complete && x1.deliveriesPerSecond >= TARGET_ONE_PROCESS });
    if (bare) {
      const ratio = x1.deliveriesPerSecond / bare.deliveriesPerSecond;
      out.push({ figure: 'drainer ×1 vs bare consumer', value: rate(x1), reference: rate(bare), ratio: `${ratio.toFixed(2)}x`, target: `>= ${TARGET_VS_BARE}x`, pass: x1.complete && ratio >= TARGET_VS_BARE });
    }
  }
  if (x2) {
    out.push({
      figure: 'drainer ×2 deliveries/s',
      value: rate(x2),
      reference: x1 ? `×1 ${rate(x1)}` : '-',
      ratio: x1 ? `${(x2.deliveriesPerSecond / x1.deliveriesPerSecond).toFixed(2)}x` : '-',
      target: '-',
      pass: null,
    });
    if (bare) out.push({ figure: 'drainer ×2 vs bare consumer', value: rate(x2), reference: rate(bare), ratio: `${(x2.deliveriesPerSecond / bare.deliveriesPerSecond).toFixed(2)}x`, target: '-', pass: null });
  }
  if (bares.length > 1 || x1s.length > 1) {
    const per = (runs: ThroughputRun[]) => runs.map((r) => fmt(r.deliveriesPerSecond)).join(', ');
    out.push({
      figure: `passes (median reported)`,
      value: x1s.length > 0 ? `×1 ${per(x1s)}` : '-',
      reference: bares.length > 0 ? `bare ${per(bares)}` : '-',
      ratio: bares.length === x1s.length && bares.length > 0 ? x1s.map((r, i) => `${(r.deliveriesPerSecond / bares[i].deliveriesPerSecond).toFixed(2)}x`).join(' ') : '-',
      target: 'all complete',
      pass: [...bares, ...x1s].every((r) => r.complete),
    });
  }
  const perK = (r: ThroughputRun) => (r.cpu.consumer * 1e6) / r.expected;
  // The median passes stand for their label; the other passes are in the passes row and the JSON.
  const shown = tp.filter((r) => (r.label !== 'bare' && r.label !== 'drainer-x1') || r === bare || r === x1);
  for (const r of shown) {
    out.push({
      figure: `${r.label} every order delivered`,
      value: `${fmt(r.delivered)} distinct, ${r.duplicates} dup`,
      reference: `${fmt(r.expected)} produced`,
      ratio: '-',
      target: 'all',
      pass: r.delivered === r.expected,
    });
    out.push({
      figure: `${r.label} CPU ms per 1,000 deliveries`,
      value: `${fmt(perK(r))} ms (+ redis ${fmt((r.cpu.redis * 1e6) / r.expected)})`,
      reference: bare && r !== bare ? `bare ${fmt(perK(bare))} ms` : '-',
      ratio: bare && r !== bare ? `${(perK(r) / perK(bare)).toFixed(2)}x` : '-',
      target: '-',
      pass: null,
    });
    if (r.label !== 'drainer-x1-small') {
      const ceiling = (x: ThroughputRun) => (os.cpus().length * x.expected) / (x.cpu.consumer + x.cpu.redis + x.cpu.simulator + x.cpu.broker);
      out.push({
        figure: `${r.label} CPU-bound ceiling (${os.cpus().length} cores, whole pipeline)`,
        value: `${fmt(ceiling(r))}/s`,
        reference: bare && r !== bare ? `bare ${fmt(ceiling(bare))}/s` : '-',
        ratio: bare && r !== bare ? `${(ceiling(r) / ceiling(bare)).toFixed(2)}x` : '-',
        target: '-',
        pass: null,
      });
    }
    if (r.kind === 'drainer') {
      out.push({
        figure: `${r.label} RSS start→peak`,
        value: r.rss.map((x, i) => `${fmt(x.startMb)}→${fmt(x.peakMb)} MB (heap ${fmt(r.heapPeakMb[i] ?? Number.NaN)})`).join(', '),
        reference: `backlog ${fmt(r.expected)}`,
        ratio: '-',
        target: '-',
        pass: null,
      });
    }
  }
  // "RSS flat whatever the backlog": the same drainer on a backlog ten times smaller must peak at about the same RSS.
  const small = tp.find((r) => r.label === 'drainer-x1-small');
  if (x1 && small) {
    const peak = (r: ThroughputRun) => Math.max(...r.rss.map((x) => x.peakMb));
    const diff = peak(x1) - peak(small);
    out.push({
      figure: 'drainer ×1 peak RSS vs backlog',
      value: `${fmt(peak(x1))} MB at ${fmt(x1.expected)}`,
      reference: `${fmt(peak(small))} MB at ${fmt(small.expected)}`,
      ratio: `${diff >= 0 ? '+' : ''}${fmt(diff)} MB`,
      target: `< +${TARGET_RSS_GROWTH_MB} MB`,
      pass: diff < TARGET_RSS_GROWTH_MB,
    });
    out.push({
      figure: 'drainer ×1 peak BullMQ window vs backlog',
      value: `${fmt(x1.peakPendingJobs ?? Number.NaN)} jobs at ${fmt(x1.expected)}`,
      reference: `${fmt(small.peakPendingJobs ?? Number.NaN)} jobs at ${fmt(small.expected)}`,
      ratio: '-',
      target: '-',
      pass: null,
    });
  }
  for (const a of acc) {
    const x = a.accuracy;
    if (!x) {
      out.push({ figure: `rate ${fmt(a.rate)}/s`, value: 'not measured', reference: '-', ratio: '-', target: '-', pass: false });
      continue;
    }
    const dry = a.ranDry ? ' (BACKLOG RAN DRY)' : '';
    out.push({
      figure: `rate ${fmt(a.rate)}/s ${ACCURACY_S}-s average`,
      value: `${x.mean.toFixed(1)}/s${dry}`,
      reference: `${fmt(a.rate)}/s configured`,
      ratio: pct(x.meanError),
      target: `|error| < ${TARGET_RATE_ERROR * 100}%`,
      pass: !a.ranDry && Math.abs(x.meanError) < TARGET_RATE_ERROR,
    });
    out.push({
      figure: `rate ${fmt(a.rate)}/s worst 1-s window`,
      value: `${x.worst} (max ${x.max} ${pct(x.maxError, 1)}, min ${x.min})`,
      reference: `${fmt(a.rate)}/s configured`,
      ratio: pct(x.worstError, 1),
      target: `|error| < ${TARGET_RATE_ERROR * 100}%`,
      pass: !a.ranDry && Math.abs(x.worstError) < TARGET_RATE_ERROR,
    });
    out.push({
      figure: `rate ${fmt(a.rate)}/s drainer RSS start→peak`,
      value: `${fmt(a.rss.startMb)}→${fmt(a.rss.peakMb)} MB (heap ${fmt(a.heapPeakMb)})`,
      reference: `backlog ${fmt(a.backlog)}`,
      ratio: '-',
      target: '-',
      pass: null,
    });
  }
  return out;
}

/** The commit, and a hash of drainer/src as it is on disk (it may differ from the commit). */
function sourceVersion(): { commit: string; drainerSrcSha1: string; dirty: boolean } {
  const git = (args: string[]) => execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim();
  const dir = path.join(repoRoot, 'drainer/src');
  const h = createHash('sha1');
  for (const f of fs.readdirSync(dir).sort()) h.update(f).update(fs.readFileSync(path.join(dir, f)));
  return { commit: git(['rev-parse', 'HEAD']), drainerSrcSha1: h.digest('hex'), dirty: git(['status', '--porcelain', '--', 'drainer/src']) !== '' };
}

async function main(): Promise<void> {
  const started = new Date();
  const loadStart = os.loadavg();
  console.log(
    `drainer bench: ${fmt(ORDERS)} orders, ${PARTITIONS} partitions, accuracy ${ACCURACY_S} s at ${RATES.join(', ')}/s, drainer concurrency ${CONCURRENCY}, bare in-flight ${BARE_IN_FLIGHT}; ${os.cpus().length} CPUs, load ${loadStart.map((l) => l.toFixed(2)).join(' ')}`,
  );
  // One at a time, so a failed start leaves nothing running.
  const redisProc = await startRedis();
  const broker = await startBroker().catch(async (err: unknown) => {
    await redisProc.stop();
    throw err;
  });
  const sim = await startSimulator().catch(async (err: unknown) => {
    await Promise.allSettled([redisProc.stop(), broker.kill('SIGKILL')]);
    fs.rmSync(broker.dataDir, { recursive: true, force: true });
    fs.rmSync(redisProc.dir, { recursive: true, force: true });
    throw err;
  });
  const redis = new Redis(redisProc.url, { maxRetriesPerRequest: null });
  redis.on('error', () => undefined);
  const kafka = new Kafka({ clientId: 'bench-drainer', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  const producer = kafka.producer();
  const s: Stack = { redisProc, redis, broker, admin, producer, sim };
  const tp: ThroughputRun[] = [];
  const acc: AccuracyRun[] = [];
  const prefill: Record<string, { orders: number; seconds: number; bytes: number }> = {};
  const fill = async (topic: string, n: number) => {
    await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
    const t0 = performance.now();
    const { bytes } = await produceOrders(producer, topic, n);
    const seconds = (performance.now() - t0) / 1000;
    prefill[topic] = { orders: n, seconds, bytes };
    console.log(`pre-filled ${topic}: ${fmt(n)} orders (${fmt(bytes / 1e6, 1)} MB) in ${seconds.toFixed(1)} s`);
  };
  try {
    await Promise.all([admin.connect(), producer.connect()]);
    if (['bare', 'x1', 'x2', 'rss'].some((p) => PHASES.has(p))) {
      const topic = `backlog-${runId}`;
      await fill(topic, ORDERS);
      console.log('throughput (unlimited rate, unlimited simulator):');
      for (let pass = 1; pass <= THROUGHPUT_PASSES; pass++) {
        if (PHASES.has('bare')) tp.push(await throughputRun(s, topic, ORDERS, 'bare', 'bare', 1, undefined, pass));
        const profileDir = PROFILE && pass === 1 ? path.join(outDir, `drainer-profile-${runId}`) : undefined;
        if (PHASES.has('x1')) tp.push(await throughputRun(s, topic, ORDERS, 'drainer-x1', 'drainer', 1, profileDir, pass));
      }
      if (PHASES.has('x2')) tp.push(await throughputRun(s, topic, ORDERS, 'drainer-x2', 'drainer', 2));
      if (PHASES.has('rss')) {
        // The RSS reference: the same one-process drainer on a backlog ten times smaller.
        const smallTopic = `small-${runId}`;
        await fill(smallTopic, Math.ceil(ORDERS / 10));
        tp.push(await throughputRun(s, smallTopic, Math.ceil(ORDERS / 10), 'drainer-x1-small', 'drainer', 1));
      }
      const prof = tp.find((r) => r.profile)?.profile;
      if (prof) printProfile(prof);
    }
    if (PHASES.has('accuracy')) {
      const topic = `accuracy-${runId}`;
      // Enough for the fastest rate's warm-up and window with room to spare, so it never runs dry.
      const backlog = Math.ceil(Math.max(...RATES) * (ACCURACY_S + WARMUP_S + 15));
      await fill(topic, backlog);
      console.log('rate accuracy (one drainer, default burst max(20, 10% of the rate), unlimited simulator):');
      for (const rate of RATES) acc.push(await accuracyRun(s, topic, backlog, rate));
    }
  } finally {
    await Promise.allSettled([admin.disconnect(), producer.disconnect()]);
    redis.disconnect();
    await Promise.allSettled([stopProcess(sim.proc, 10_000), stopProcess(broker, 10_000), redisProc.stop()]);
    fs.rmSync(broker.dataDir, { recursive: true, force: true });
    fs.rmSync(redisProc.dir, { recursive: true, force: true });
  }
  const loadEnd = os.loadavg();
  const table = rows(tp, acc);
  console.log(`\nload average at start ${loadStart.map((l) => l.toFixed(2)).join(' ')}, at end ${loadEnd.map((l) => l.toFixed(2)).join(' ')} (${os.cpus().length} CPUs)\n`);
  printTable(table);
  const file = writeJson(outDir, 'drainer', {
    started: started.toISOString(),
    // drainer/src is being edited: which version was measured.
    drainerSource: sourceVersion(),
    host: { cpus: os.cpus().length, loadStart, loadEnd },
    settings: { orders: ORDERS, accuracySeconds: ACCURACY_S, rates: RATES, partitions: PARTITIONS, concurrency: CONCURRENCY, bareInFlight: BARE_IN_FLIGHT, unlimited: UNLIMITED, warmupSeconds: WARMUP_S },
    prefill,
    throughput: tp,
    accuracy: acc,
    table,
  });
  console.log(`\nwritten ${path.relative(repoRoot, file)}`);
  // Missing a target is a result; losing orders is a failure.
  if (tp.some((r) => !r.complete)) process.exitCode = 1;
}

await main();
