/**
 * `npm run bench:gateway`: the highest order rate the durable gateway sustains (p99 < 50 ms, no
 * errors) under open-model load, side by side with two references measured the same way in the
 * same run, then a CPU profile of the gateway near that rate.
 *
 * What is measured, and why:
 * - Load is open-model (bench/gateway/loadgen.ts, its own process): arrivals at a fixed rate
 *   whatever the response times, latency from each request's scheduled start (no coordinated
 *   omission), at most BENCH_GATEWAY_CONNECTIONS keep-alive connections with one request each.
 *   Every POST /v1/orders carries a unique userId, SKU-<n mod 100>, quantity 1.
 * - Servers, one at a time: (1) bare node:http that JSON.parses the body and answers 202;
 *   (2) express 5 with its defaults (express.json(), res.status(202).json()); (3) the gateway
 *   (`spillway gateway --rate-limit 0`) in front of the broker (--fsync always: every 202 waits
 *   for an fdatasync) and a private redis-server (no RDB, appendonly off: Redis durability is
 *   not what is measured), its 100 SKUs loaded through the admin API with ample stock and a
 *   per-user limit, so every order runs the full reserve script.
 * - Each server gets the same step search (bench/gateway/search.ts): start rate, x factor per
 *   step until a step fails (p99 >= limit, any error, or answers behind arrivals), then a
 *   geometric bisection. A step is a warm-up then a measured window; CPU of every process comes
 *   from /proc/<pid>/stat at the window's edges, per successful request. The machine has 2
 *   cores, so the generator's own CPU and lateness are printed to show when it, rather than the
 *   server, was the limit.
 * - Finally a fresh gateway runs with --cpu-prof at BENCH_GATEWAY_PROFILE_SHARE of its max rate;
 *   the profile (cut to the measured window) is summarised and copied to bench/out/.
 *
 * Settings (env): BENCH_GATEWAY_SERVERS (bare,express,gateway), BENCH_GATEWAY_START_RATE (500),
 * BENCH_GATEWAY_FACTOR (1.25), BENCH_GATEWAY_STEP_S (5), BENCH_GATEWAY_WARMUP_S (1; 3 for the
 * first step of each server), BENCH_GATEWAY_REFINE (2 bisection steps), BENCH_GATEWAY_P99_MS (50),
 * BENCH_GATEWAY_CONNECTIONS (256), BENCH_GATEWAY_TIMEOUT_MS (2000), BENCH_GATEWAY_PER_USER_LIMIT
 * (5), BENCH_GATEWAY_IDEMPOTENCY (0; 1 sends a unique Idempotency-Key per order),
 * BENCH_GATEWAY_PROFILE_S (10; 0 skips), BENCH_GATEWAY_PROFILE_SHARE (0.75: the profiler itself costs the gateway CPU),
 * BENCH_GATEWAY_PROFILE_ONLY_RATE (0; N skips the searches and only profiles the gateway at N/s),
 * BENCH_GATEWAY_CLIENT (raw; undici = an undici Pool instead of the generator's own client),
 * BENCH_GATEWAY_ARGS (extra `spillway gateway` flags, e.g. "--linger-ms 2"), BENCH_GATEWAY_MAX_RATE (40000), BENCH_GATEWAY_QUIET_WAIT_S (20: before each server, wait this
 * long at most for the machine to be idle; steps that fail while other processes used > 0.25 core
 * are retried, up to 3 times per server, and every step prints the cores used by others).
 * Exit status: 0 when every phase ran (targets are reported, not enforced), 1 otherwise.
 * Results go to bench/out/gateway-<timestamp>.json (and the profile next to it).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { repoRoot, spillwayBin, startBrokerProcess, startGatewayProcess, startRedis, tempDir, type BrokerProcess, type GatewayProcess, type RedisProcess } from '../lib/src/testing/processes.ts';
import { GeneratorProcess, startProfiledGateway, startReference } from './gateway/children.ts';
import { analyseProfile, type ProfileSummary } from './gateway/profile.ts';
import type { LoadConfig } from './gateway/protocol.ts';
import { commonRateTable, fmt, profileTable, stepTable, summaryTable, syscallTable, table, targets, targetTable, writeJson, type ServerResult } from './gateway/report.ts';
import { waitForQuiet } from './gateway/proc-cpu.ts';
import { histogramDelta, histogramFrom, scrapeText, type HistogramDelta, type HistogramScrape } from './gateway/prom.ts';
import { findMaxRate, runStep, type SearchOptions, type StepRecord } from './gateway/search.ts';

const TARGETS = { vsExpress: 0.8, vsBare: 0.35 } as const;
const SKUS = 100;
const OUT_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'out');
const ADMIN_TOKEN = 'bench-admin-token';
const SERVER_KEYS = ['bare', 'express', 'gateway'] as const;
type ServerKey = (typeof SERVER_KEYS)[number];

interface Settings {
  servers: ServerKey[];
  search: SearchOptions;
  connections: number;
  timeoutMs: number;
  perUserLimit: number;
  idempotencyKeys: boolean;
  profileMs: number;
  profileShare: number;
  /** Skip the searches and only profile the gateway at this rate (0 = normal run). */
  profileOnlyRate: number;
  quietWaitMs: number;
  /** Extra `spillway gateway` arguments (e.g. --linger-ms 2) for experiments. */
  gatewayArgs: string[];
  client: 'raw' | 'undici';
}

function readSettings(env: NodeJS.ProcessEnv): Settings {
  const problems: string[] = [];
  const num = (name: string, def: number, min: number, max: number, integer = true): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return def;
    const n = Number(raw);
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      problems.push(`${name}=${raw}: expected ${integer ? 'an integer' : 'a number'} in [${min}, ${max}]`);
      return def;
    }
    return n;
  };
  const serversRaw = env.BENCH_GATEWAY_SERVERS ?? SERVER_KEYS.join(',');
  const servers = serversRaw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const s of servers) if (!(SERVER_KEYS as readonly string[]).includes(s)) problems.push(`BENCH_GATEWAY_SERVERS: unknown server '${s}' (bare, express, gateway)`);
  const stepMs = num('BENCH_GATEWAY_STEP_S', 5, 1, 600, false) * 1000;
  const warmupMs = num('BENCH_GATEWAY_WARMUP_S', 1, 0, 600, false) * 1000;
  const settings: Settings = {
    servers: SERVER_KEYS.filter((k) => servers.includes(k)),
    search: {
      startRate: num('BENCH_GATEWAY_START_RATE', 500, 1, 1_000_000),
      factor: num('BENCH_GATEWAY_FACTOR', 1.25, 1.01, 4, false),
      maxRate: num('BENCH_GATEWAY_MAX_RATE', 40_000, 1, 1_000_000),
      maxSteps: 30,
      refineSteps: num('BENCH_GATEWAY_REFINE', 2, 0, 10),
      stepMs,
      warmupMs,
      firstWarmupMs: Math.max(warmupMs, 3000),
      p99LimitMs: num('BENCH_GATEWAY_P99_MS', 50, 1, 60_000, false),
      minThroughputShare: 0.95,
      settleMs: 1000,
      othersCoresLimit: 0.25,
      contendedRetries: 3,
      generatorLagLimitMs: 5,
      generatorCoresLimit: 0.9,
    },
    connections: num('BENCH_GATEWAY_CONNECTIONS', 256, 1, 10_000),
    timeoutMs: num('BENCH_GATEWAY_TIMEOUT_MS', 2000, 100, 60_000),
    perUserLimit: num('BENCH_GATEWAY_PER_USER_LIMIT', 5, 0, 1_000_000),
    idempotencyKeys: num('BENCH_GATEWAY_IDEMPOTENCY', 0, 0, 1) === 1,
    profileMs: num('BENCH_GATEWAY_PROFILE_S', 10, 0, 600, false) * 1000,
    profileShare: num('BENCH_GATEWAY_PROFILE_SHARE', 0.75, 0.05, 2, false),
    profileOnlyRate: num('BENCH_GATEWAY_PROFILE_ONLY_RATE', 0, 0, 1_000_000),
    quietWaitMs: num('BENCH_GATEWAY_QUIET_WAIT_S', 20, 0, 3600, false) * 1000,
    gatewayArgs: (env.BENCH_GATEWAY_ARGS ?? '').split(/\s+/).filter((a) => a !== ''),
    client: env.BENCH_GATEWAY_CLIENT === 'undici' ? 'undici' : 'raw',
  };
  if (env.BENCH_GATEWAY_CLIENT !== undefined && env.BENCH_GATEWAY_CLIENT !== '' && env.BENCH_GATEWAY_CLIENT !== 'raw' && env.BENCH_GATEWAY_CLIENT !== 'undici') {
    problems.push(`BENCH_GATEWAY_CLIENT=${env.BENCH_GATEWAY_CLIENT}: expected raw or undici`);
  }
  if (problems.length > 0) {
    process.stderr.write(`bench:gateway: bad settings:\n  ${problems.join('\n  ')}\n`);
    process.exit(2);
  }
  return settings;
}

const LABELS: Record<ServerKey, string> = {
  bare: 'bare node:http (parse JSON, 202)',
  express: 'express-only (express.json + res.json, 202)',
  gateway: 'spillway gateway (durable, fsync on)',
};

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Stops what was started, last first, whatever happened. */
class Cleanup {
  private readonly fns: { what: string; fn: () => Promise<unknown> }[] = [];
  add(what: string, fn: () => Promise<unknown>): void {
    this.fns.push({ what, fn });
  }
  async run(): Promise<void> {
    for (const { what, fn } of this.fns.splice(0).reverse()) {
      await fn().catch((err: unknown) => log(`cleanup: ${what}: ${String(err)}`));
    }
  }
}

function loadConfig(port: number, settings: Settings, userPrefix: string): Omit<LoadConfig, 'type'> {
  return {
    host: '127.0.0.1',
    port,
    path: '/v1/orders',
    okStatus: 202,
    maxConnections: settings.connections,
    initialConnections: Math.min(32, settings.connections),
    timeoutMs: settings.timeoutMs,
    userPrefix,
    skus: SKUS,
    idempotencyKeys: settings.idempotencyKeys,
    client: settings.client,
  };
}

async function smokeTest(url: string): Promise<string> {
  const res = await fetch(`${url}/v1/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sku: 'SKU-0', userId: `smoke-${process.pid}`, quantity: 1, priceCents: 1999 }),
  });
  const text = await res.text();
  if (res.status !== 202) throw new Error(`smoke order to ${url} answered ${res.status}: ${text}`);
  return text;
}

function printStep(name: string, extra: readonly string[]) {
  let printedHeader = false;
  return (r: StepRecord) => {
    const t = stepTable([r], extra).split('\n');
    if (!printedHeader) {
      log(`\n${name}`);
      log(t.slice(0, 3).join('\n'));
      printedHeader = true;
    }
    log(t[3]);
  };
}

interface StackScrape {
  batch: HistogramScrape | null;
  produce: HistogramScrape | null;
  fsync: HistogramScrape | null;
}

/** What the gateway and the broker reported about one step (warm-up and drain included). */
interface StackStep {
  rate: number;
  ordersPerProduce: number;
  produceMs: HistogramDelta | null;
  fsyncMs: HistogramDelta | null;
}

async function scrapeStack(gatewayUrl: string, brokerMetricsUrl: string): Promise<StackScrape> {
  const [gw, br] = await Promise.all([scrapeText(`${gatewayUrl}/metrics`), scrapeText(brokerMetricsUrl)]);
  return {
    batch: gw === null ? null : histogramFrom(gw, 'spillway_gateway_produce_batch_records'),
    produce: br === null ? null : histogramFrom(br, 'spillway_broker_request_duration_seconds', { api: 'produce' }),
    fsync: br === null ? null : histogramFrom(br, 'spillway_broker_fsync_duration_seconds'),
  };
}

function stackStep(rate: number, a: StackScrape, b: StackScrape): StackStep {
  const ms = (d: HistogramDelta | null) => (d === null ? null : { count: d.count, mean: d.mean * 1000, p99: d.p99 * 1000 });
  return { rate, ordersPerProduce: histogramDelta(a.batch, b.batch)?.mean ?? Number.NaN, produceMs: ms(histogramDelta(a.produce, b.produce)), fsyncMs: ms(histogramDelta(a.fsync, b.fsync)) };
}

function stackTable(steps: readonly StackStep[]): string {
  const d = (h: HistogramDelta | null) => (h === null ? 'n/a' : `${fmt(h.mean, 2)} / ${Number.isFinite(h.p99) ? `<=${fmt(h.p99, 1)}` : '>max'}`);
  return `broker and publisher per gateway step (whole step incl. warm-up; p99 = upper bound of its histogram bucket):\n${table(
    ['rate/s', 'orders per produce request', 'produce requests', 'produce ms mean / p99', 'fsync rounds', 'fsync ms mean / p99'],
    steps.map((st) => [fmt(st.rate), fmt(st.ordersPerProduce, 2), fmt(st.produceMs?.count ?? Number.NaN), d(st.produceMs), fmt(st.fsyncMs?.count ?? Number.NaN), d(st.fsyncMs)]),
    0,
  )}`;
}

/** Which code was measured: HEAD and whether the gateway's sources differed from it. */
function gitState(): { head: string; gatewayDirty: string[] } | null {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim();
    return { head: git('rev-parse', 'HEAD'), gatewayDirty: git('status', '--porcelain', '--', 'gateway/src', 'lib/src').split('\n').filter((l) => l !== '') };
  } catch {
    return null;
  }
}

/** Before each server: wait for other work on the machine to stop (bounded), and say so. */
async function quiet(settings: Settings, key: ServerKey): Promise<void> {
  if (settings.quietWaitMs <= 0) return;
  const q = await waitForQuiet(settings.quietWaitMs, 0.2);
  const busy = `${fmt(q.busyCores, 2)} cores busy`;
  if (!q.quiet) log(`\nwarning: the machine is not quiet before ${key} (${busy} by other processes after waiting ${fmt(q.waitedMs / 1000)} s); steps marked '!' in 'others' ran contended`);
  else if (q.waitedMs > 2500) log(`\n(waited ${fmt(q.waitedMs / 1000)} s for other work on the machine to stop before ${key})`);
}

interface GatewayStack {
  redis: RedisProcess;
  broker: BrokerProcess;
}

async function startStack(cleanup: Cleanup): Promise<GatewayStack> {
  const redis = await startRedis({ args: ['--appendonly', 'no'] });
  cleanup.add('redis', async () => {
    await redis.stop();
    fs.rmSync(redis.dir, { recursive: true, force: true });
  });
  const broker = await startBrokerProcess({ args: ['--fsync', 'always'] });
  cleanup.add('broker', async () => {
    await broker.kill();
    fs.rmSync(broker.dataDir, { recursive: true, force: true });
  });
  return { redis, broker };
}

async function startGateway(stack: GatewayStack, settings: Settings, cleanup: Cleanup): Promise<GatewayProcess> {
  const gw = await startGatewayProcess({
    redisUrl: stack.redis.url,
    kafkaBrokers: stack.broker.bootstrap,
    args: ['--rate-limit', '0', '--admin-token', ADMIN_TOKEN, ...settings.gatewayArgs],
  });
  cleanup.add('gateway', () => gw.kill());
  return gw;
}

async function loadSkus(url: string, perUserLimit: number): Promise<void> {
  const skus = Array.from({ length: SKUS }, (_, i) => ({ sku: `SKU-${i}`, stock: 1_000_000_000, perUserLimit }));
  const res = await fetch(`${url}/v1/admin/skus`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` },
    body: JSON.stringify({ skus }),
  });
  if (res.status !== 200) throw new Error(`loading SKUs answered ${res.status}: ${await res.text()}`);
}

interface ProfileRun {
  rate: number;
  step: StepRecord;
  summary: ProfileSummary;
  savedAs: string;
}

async function profileGateway(stack: GatewayStack, settings: Settings, rate: number, startedAt: Date, cleanup: Cleanup): Promise<ProfileRun> {
  const dir = tempDir('gateway-prof');
  const gw = await startProfiledGateway({
    spillwayBin,
    cwd: repoRoot,
    profileDir: dir,
    intervalUs: 500,
    args: ['--redis-url', stack.redis.url, '--kafka-brokers', stack.broker.bootstrap, '--rate-limit', '0', '--admin-token', ADMIN_TOKEN, ...settings.gatewayArgs],
  });
  cleanup.add('profiled gateway', () => gw.stop());
  await smokeTest(gw.url);
  const { gen } = await GeneratorProcess.start(loadConfig(gw.port, settings, `p${process.pid}-`));
  let step: StepRecord;
  try {
    const pids = { server: gw.pid, broker: stack.broker.proc.pid as number, redis: stack.redis.proc.pid as number, loadgen: gen.pid };
    step = await runStep(gen, pids, rate, 2000, { ...settings.search, stepMs: settings.profileMs }, 1);
  } finally {
    await gen.stop();
  }
  // The profile is written when the process exits (SIGTERM -> graceful stop -> exit 0).
  const code = await gw.stop();
  if (code !== 0) throw new Error(`the profiled gateway exited with ${String(code)}`);
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`the profiled gateway wrote no .cpuprofile in ${dir}`);
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const savedAs = path.join(OUT_DIR, `gateway-${startedAt.toISOString().replace(/[:.]/g, '-')}.cpuprofile`);
  fs.copyFileSync(path.join(dir, files[0]), savedAs);
  fs.rmSync(dir, { recursive: true, force: true });
  const summary = analyseProfile(savedAs, repoRoot, step.windowUs);
  return { rate, step, summary, savedAs };
}

async function main(): Promise<void> {
  const settings = readSettings(process.env);
  const startedAt = new Date();
  const cpus = os.cpus();
  log(`bench:gateway  ${startedAt.toISOString()}  node ${process.version}  ${cpus.length} x ${cpus[0]?.model ?? '?'}`);
  const s = settings.search;
  log(
    `open-model load: start ${s.startRate}/s, x${s.factor} per step, ${s.stepMs / 1000} s measured after ${s.warmupMs / 1000} s warm-up (${s.firstWarmupMs / 1000} s on a server's first step), ` +
      `${s.refineSteps} bisection steps; pass = p99 < ${s.p99LimitMs} ms, 0 errors, answers >= ${s.minThroughputShare * 100}% of arrivals; ` +
      `<= ${settings.connections} connections (${settings.client === 'raw' ? 'raw HTTP/1.1 client' : 'undici Pool'}, one request each), timeout ${settings.timeoutMs} ms`,
  );
  const cleanup = new Cleanup();
  const onSignal = () => {
    void cleanup.run().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const results: ServerResult[] = [];
  const extraColumns: Record<ServerKey, string[]> = { bare: [], express: [], gateway: ['broker', 'redis'] };
  let profile: ProfileRun | null = null;
  let batchAtBest: number | null = null;
  let stackSteps: StackStep[] = [];
  let failed = false;
  try {
    if (settings.profileOnlyRate > 0) {
      await quiet(settings, 'gateway');
      const stack = await startStack(cleanup);
      const gw = await startGateway(stack, settings, cleanup);
      await loadSkus(gw.url, settings.perUserLimit);
      await gw.kill();
      log(`\nprofiling a gateway (--cpu-prof, 500 µs interval) at ${fmt(settings.profileOnlyRate)}/s for ${settings.profileMs / 1000} s ...`);
      profile = await profileGateway(stack, settings, settings.profileOnlyRate, startedAt, cleanup);
    }
    for (const key of settings.profileOnlyRate > 0 ? [] : settings.servers) {
      await quiet(settings, key);
      if (key !== 'gateway') {
        const ref = await startReference(key);
        cleanup.add(key, () => ref.stop());
        await smokeTest(`http://127.0.0.1:${ref.port}`);
        const { gen } = await GeneratorProcess.start(loadConfig(ref.port, settings, `${key[0]}${process.pid}-`));
        try {
          const search = await findMaxRate(gen, { server: ref.pid, loadgen: gen.pid }, settings.search, printStep(LABELS[key], []));
          results.push({ key, label: LABELS[key], search });
        } finally {
          await gen.stop();
          await ref.stop();
        }
        continue;
      }
      const stack = await startStack(cleanup);
      const gw = await startGateway(stack, settings, cleanup);
      await loadSkus(gw.url, settings.perUserLimit);
      log(`\ngateway ${gw.url} (--rate-limit 0${settings.gatewayArgs.length > 0 ? ` ${settings.gatewayArgs.join(' ')}` : ''}): redis ${stack.redis.url} (no RDB, appendonly off), broker ${stack.broker.bootstrap} (--fsync always), ${SKUS} SKUs loaded (stock 1e9, perUserLimit ${settings.perUserLimit})`);
      log(`smoke order: ${await smokeTest(gw.url)}`);
      const { gen } = await GeneratorProcess.start(loadConfig(gw.port, settings, `g${process.pid}-`));
      // Records per produce request, per step (read between steps, outside the windows).
      // Publisher batching and broker fsync/produce latency per step (scraped between steps).
      const brokerMetricsUrl = `http://127.0.0.1:${stack.broker.metricsPort}/metrics`;
      const extras = new Map<StepRecord, StackStep>();
      let lastScrape: StackScrape | null = null;
      let lastStep: StepRecord | null = null;
      const scrapeBetween = async () => {
        const now = await scrapeStack(gw.url, brokerMetricsUrl);
        if (lastScrape !== null && lastStep !== null && !extras.has(lastStep)) extras.set(lastStep, stackStep(lastStep.rate, lastScrape, now));
        lastScrape = now;
      };
      try {
        const pids = { server: gw.proc.pid as number, broker: stack.broker.proc.pid as number, redis: stack.redis.proc.pid as number, loadgen: gen.pid };
        const print = printStep(LABELS.gateway, extraColumns.gateway);
        const onStep = (r: StepRecord) => {
          print(r);
          lastStep = r;
        };
        const search = await findMaxRate(gen, pids, settings.search, onStep, scrapeBetween);
        await scrapeBetween();
        results.push({ key, label: LABELS.gateway, search });
        stackSteps = search.steps.map((st) => extras.get(st) ?? { rate: st.rate, ordersPerProduce: Number.NaN, produceMs: null, fsyncMs: null });
        log(stackTable(stackSteps));
        batchAtBest = search.best !== null ? (extras.get(search.best)?.ordersPerProduce ?? null) : null;
      } finally {
        await gen.stop();
        await gw.kill();
      }
      const best = results[results.length - 1].search.best;
      if (settings.profileMs > 0 && best !== null) {
        const rate = Math.round(best.rate * settings.profileShare);
        log(`\nprofiling a fresh gateway (--cpu-prof, 500 µs interval) at ${fmt(rate)}/s for ${settings.profileMs / 1000} s ...`);
        profile = await profileGateway(stack, settings, rate, startedAt, cleanup);
      }
    }
  } catch (err) {
    failed = true;
    log(`\nbench:gateway failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  } finally {
    await cleanup.run();
  }

  // ---- report ----
  log(`\n==== max sustainable order rate (open model, p99 < ${s.p99LimitMs} ms, no errors), same run, same machine ====`);
  log(summaryTable(results));
  const common = commonRateTable(results);
  if (common !== null) log(common);
  if (results.length > 0) log(syscallTable(results));
  const ts = targets(results, TARGETS.vsExpress, TARGETS.vsBare);
  log(targetTable(ts));
  const gwBest = results.find((r) => r.key === 'gateway')?.search.best ?? null;
  const refCpu = (k: ServerKey) => results.find((r) => r.key === k)?.search.best?.cpuUsPerOk.server ?? Number.NaN;
  if (gwBest !== null) {
    const u = gwBest.cpuUsPerOk;
    log(
      `\nCPU per order at the gateway's max rate (${fmt(gwBest.rate)}/s): gateway ${fmt(u.server)} µs, broker ${fmt(u.broker)} µs, redis ${fmt(u.redis)} µs ` +
        `(durable path total ${fmt(u.server + u.broker + u.redis)} µs); load generator ${fmt(u.loadgen)} µs. ` +
        `References per request at their max: express-only ${fmt(refCpu('express'))} µs, bare http ${fmt(refCpu('bare'))} µs ` +
        `(gateway/express ${fmt(u.server / refCpu('express'), 2)}x, gateway/bare ${fmt(u.server / refCpu('bare'), 2)}x). ` +
        `Machine ${fmt(gwBest.cpu.machineBusy * 100)}% busy${batchAtBest !== null ? `; ${fmt(batchAtBest, 1)} orders per produce request` : ''}.`,
    );
  }
  for (const r of results) {
    const limited = r.search.steps.filter((st) => st.generatorLimited);
    if (limited.length > 0) log(`note: ${r.label}: the generator ran late (dispatch p99 > ${s.generatorLagLimitMs} ms or > ${s.generatorCoresLimit} core) at ${limited.map((st) => `${fmt(st.rate)}/s`).join(', ')}; figures there may be generator- or machine-bound.`);
  }
  if (profile !== null) {
    const p = profile;
    log(`\n==== gateway CPU profile at ${fmt(p.rate)}/s (${fmt(p.summary.windowMs / 1000, 1)} s window, ${fmt(p.summary.busySamples)} busy samples; saved ${path.relative(repoRoot, p.savedAs)}) ====`);
    log(
      `profiled step: ok ${fmt(p.step.okPerSec)}/s, p99 ${fmt(p.step.stats.latency.p99Ms, 1)} ms, errors ${p.step.stats.errors.total}${p.step.reason !== '' ? ` (${p.step.reason})` : ''}, gateway ${fmt(p.step.cpu.cores.server, 2)} cores = ${fmt(p.step.cpuUsPerOk.server)} µs/order (profiler on)${p.summary.windowApplied ? '' : ' [window not applied: whole profile]'}`,
    );
    log(profileTable('top self time (function  file:line)', p.summary.topSelf));
    log(profileTable('\nself time by package/module', p.summary.selfByGroup));
    log(profileTable('\nself time with native/builtin frames charged to their JS caller', p.summary.attributedByGroup));
    log(profileTable('\non the stack (inclusive) by package', p.summary.onStackByGroup));
    log(profileTable('\nrepo functions on the stack (inclusive)', p.summary.repoInclusive));
    log(profileTable('\nnative/builtin leaf frames by the library and repo code that led to them', p.summary.nativeByOrigin));
  }
  const file = writeJson(OUT_DIR, startedAt, {
    startedAt: startedAt.toISOString(),
    git: gitState(),
    node: process.version,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model,
    settings,
    targets: ts,
    results: results.map((r) => ({ key: r.key, label: r.label, best: r.search.best, firstFail: r.search.firstFail, steps: r.search.steps })),
    gatewayBatchAtBest: batchAtBest,
    gatewayStackSteps: stackSteps,
    profile: profile === null ? null : { rate: profile.rate, step: profile.step, summary: profile.summary },
  });
  log(`\nresults: ${path.relative(repoRoot, file)}`);
  process.exit(failed ? 1 : 0);
}

await main();
