/**
 * `node --import tsx bench/gateway-ab.ts DIR_A DIR_B`: A/B of the gateway's CPU per order on a
 * shared machine. One redis-server and one broker (--fsync always); the gateway of checkout A
 * (DIR_A/bin/spillway.mjs) and of checkout B run side by side, each loaded by its own generator at
 * the same fixed open-model rate, for ROUNDS measured windows; the gateways' CPU µs per answered
 * order is printed per window with the ratio B/A (both saw the same machine at the same time). Rates are not judged (the machine is shared):
 * this answers "did a change make an order cheaper", not "how fast is it".
 * Env: AB_ARGS_A / AB_ARGS_B (extra `spillway gateway` flags per side), AB_RATE (500), AB_STEP_S (8), AB_WARMUP_S (2), AB_ROUNDS (5), AB_IDEMPOTENCY (0).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { onLines, startBrokerProcess, startRedis } from '../lib/src/testing/processes.ts';
import { GeneratorProcess } from './gateway/children.ts';
import { histogramDelta, histogramFrom, scrapeText, type HistogramScrape } from './gateway/prom.ts';
import { runStep, type SearchOptions } from './gateway/search.ts';

const [dirA, dirB] = process.argv.slice(2).map((d) => path.resolve(d));
if (!dirA || !dirB) {
  process.stderr.write('usage: gateway-ab.ts DIR_A DIR_B\n');
  process.exit(2);
}
const env = (n: string, d: number) => (process.env[n] ? Number(process.env[n]) : d);
const RATE = env('AB_RATE', 500);
const STEP_MS = env('AB_STEP_S', 8) * 1000;
const WARMUP_MS = env('AB_WARMUP_S', 2) * 1000;
const ROUNDS = env('AB_ROUNDS', 5);
const IDEM = env('AB_IDEMPOTENCY', 0) === 1;
const TOKEN = 'ab-admin-token';

async function startGw(dir: string, redisUrl: string, brokers: string, extra: string[]): Promise<{ pid: number; port: number; stop: () => Promise<void> }> {
  const proc = spawn(process.execPath, [path.join(dir, 'bin/spillway.mjs'), 'gateway', '--port', '0', '--redis-url', redisUrl, '--kafka-brokers', brokers, '--rate-limit', '0', '--admin-token', TOKEN, ...extra], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const port = await new Promise<number>((resolve, reject) => {
    const logFile = process.env.AB_LOG_DIR ? fs.createWriteStream(path.join(process.env.AB_LOG_DIR, `gateway-${proc.pid}.log`)) : null;
    onLines(proc.stdout, (line) => {
      logFile?.write(`${line}\n`);
      try {
        const l = JSON.parse(line) as { msg?: string; port?: number };
        if (l.msg === 'gateway listening' && typeof l.port === 'number') resolve(l.port);
      } catch {
        /* not a log line */
      }
    });
    void exited.then(() => reject(new Error(`gateway of ${dir} exited`)));
  });
  return {
    pid: proc.pid as number,
    port,
    stop: async () => {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

const opts: SearchOptions = {
  startRate: RATE, factor: 1.25, maxRate: RATE, maxSteps: 1, refineSteps: 0, stepMs: STEP_MS, warmupMs: WARMUP_MS, firstWarmupMs: WARMUP_MS,
  p99LimitMs: 50, minThroughputShare: 0.95, settleMs: 0, othersCoresLimit: 0.25, contendedRetries: 0, generatorLagLimitMs: 5, generatorCoresLimit: 0.9,
};

const redis = await startRedis({ args: ['--appendonly', 'no'] });
const broker = await startBrokerProcess({ args: ['--fsync', 'always'] });
const ratios: number[] = [];
const results: Record<'A' | 'B', number[]> = { A: [], B: [] };
try {
  // Both gateways run at once, each with its own generator at the same rate, so whatever else
  // the machine does hits both alike; their CPU is compared window by window.
  const args = (v: string | undefined) => (v ?? '').split(/\s+/).filter((a) => a !== '');
  const gws = { A: await startGw(dirA, redis.url, broker.bootstrap, args(process.env.AB_ARGS_A)), B: await startGw(dirB, redis.url, broker.bootstrap, args(process.env.AB_ARGS_B)) };
  const batches = async (side: 'A' | 'B'): Promise<HistogramScrape | null> => {
    const text = await scrapeText(`http://127.0.0.1:${gws[side].port}/metrics`);
    return text === null ? null : histogramFrom(text, 'spillway_gateway_produce_batch_records');
  };
  try {
    const skus = Array.from({ length: 100 }, (_, k) => ({ sku: `SKU-${k}`, stock: 1_000_000_000, perUserLimit: 5 }));
    const r = await fetch(`http://127.0.0.1:${gws.A.port}/v1/admin/skus`, { method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ skus }) });
    if (r.status !== 200) throw new Error(`load skus: ${r.status}`);
    const gens = await Promise.all(
      (['A', 'B'] as const).map(async (side) => {
        const { gen } = await GeneratorProcess.start({
          host: '127.0.0.1', port: gws[side].port, path: '/v1/orders', okStatus: 202, maxConnections: 256, initialConnections: 32, timeoutMs: 2000,
          userPrefix: `ab${process.pid}-${side}-`, skus: 100, idempotencyKeys: IDEM, client: 'raw',
        });
        return gen;
      }),
    );
    try {
      // Warm both up (JIT, connections) at a quarter of the rate first: a cold gateway that starts
      // behind can stay behind (timed-out requests still cost it their work).
      await Promise.all((['A', 'B'] as const).map((side, k) => runStep(gens[k], { server: gws[side].pid }, Math.ceil(RATE / 4), 0, { ...opts, stepMs: 4000 }, 100)));
      for (let i = 0; i < ROUNDS; i++) {
        const before = { A: await batches('A'), B: await batches('B') };
        const [a, b] = await Promise.all(
          (['A', 'B'] as const).map((side, k) => runStep(gens[k], { server: gws[side].pid, loadgen: gens[k].pid }, RATE, WARMUP_MS, opts, i + 1)),
        );
        const after = { A: await batches('A'), B: await batches('B') };
        for (const [side, st] of [['A', a], ['B', b]] as const) {
          const perProduce = histogramDelta(before[side], after[side])?.mean ?? Number.NaN;
          process.stdout.write(
            `round ${i} ${side}: gateway ${st.cpuUsPerOk.server.toFixed(0)} µs/order, ${perProduce.toFixed(1)} orders per produce; ok ${st.okPerSec.toFixed(0)}/s p99 ${st.stats.latency.p99Ms === null ? '-' : st.stats.latency.p99Ms.toFixed(1)} ms errors ${st.stats.errors.total} others ${st.cpu.othersCores.toFixed(2)} cores\n`,
          );
        }
        if (a.stats.errors.total === 0 && b.stats.errors.total === 0) {
          results.A.push(a.cpuUsPerOk.server);
          results.B.push(b.cpuUsPerOk.server);
          ratios.push(b.cpuUsPerOk.server / a.cpuUsPerOk.server);
          process.stdout.write(`round ${i}: B/A ${(b.cpuUsPerOk.server / a.cpuUsPerOk.server).toFixed(2)}\n`);
        }
      }
    } finally {
      await Promise.all(gens.map((g) => g.stop()));
    }
  } finally {
    await Promise.all([gws.A.stop(), gws.B.stop()]);
  }
} finally {
  await broker.kill();
  await redis.stop();
  fs.rmSync(broker.dataDir, { recursive: true, force: true });
  fs.rmSync(redis.dir, { recursive: true, force: true });
}
const median = (xs: number[]) => (xs.length === 0 ? Number.NaN : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]);
process.stdout.write(`median gateway µs/order: A ${median(results.A).toFixed(0)}  B ${median(results.B).toFixed(0)}; median of per-round B/A ${median(ratios).toFixed(2)} over ${ratios.length} clean rounds\n`);
process.exit(0);
