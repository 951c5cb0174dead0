/**
 * `node --import tsx bench/gateway-ab.ts DIR_A DIR_B`: interleaved A/B of the gateway's CPU per
 * order on a shared machine. One redis-server and one broker (--fsync always); the gateway of
 * checkout A (DIR_A/bin/spillway.mjs) and of checkout B run one after the other, ROUNDS times
 * (A B B A A B ...), each at the same fixed open-model rate, and the gateway's CPU µs per answered
 * order is printed per run with the median per side. Rates are not judged (the machine is shared):
 * this answers "did a change make an order cheaper", not "how fast is it".
 * Env: AB_RATE (1000), AB_STEP_S (8), AB_WARMUP_S (3), AB_ROUNDS (3), AB_IDEMPOTENCY (0).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startBrokerProcess, startRedis } from '../lib/src/testing/processes.ts';
import { GeneratorProcess } from './gateway/children.ts';
import { runStep, type SearchOptions } from './gateway/search.ts';

const [dirA, dirB] = process.argv.slice(2).map((d) => path.resolve(d));
if (!dirA || !dirB) {
  process.stderr.write('usage: gateway-ab.ts DIR_A DIR_B\n');
  process.exit(2);
}
const env = (n: string, d: number) => (process.env[n] ? Number(process.env[n]) : d);
const RATE = env('AB_RATE', 1000);
const STEP_MS = env('AB_STEP_S', 8) * 1000;
const WARMUP_MS = env('AB_WARMUP_S', 3) * 1000;
const ROUNDS = env('AB_ROUNDS', 3);
const IDEM = env('AB_IDEMPOTENCY', 0) === 1;
const TOKEN = 'ab-admin-token';

async function startGw(dir: string, redisUrl: string, brokers: string): Promise<{ pid: number; port: number; stop: () => Promise<void> }> {
  const proc = spawn(process.execPath, [path.join(dir, 'bin/spillway.mjs'), 'gateway', '--port', '0', '--redis-url', redisUrl, '--kafka-brokers', brokers, '--rate-limit', '0', '--admin-token', TOKEN], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (c: string) => {
      buf += c;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const l = JSON.parse(line) as { msg?: string; port?: number };
          if (l.msg === 'gateway listening' && typeof l.port === 'number') resolve(l.port);
        } catch {
          /* not a log line */
        }
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
const results: Record<'A' | 'B', number[]> = { A: [], B: [] };
try {
  let loaded = false;
  const order: ('A' | 'B')[] = [];
  for (let i = 0; i < ROUNDS; i++) order.push(...((i % 2 === 0 ? ['A', 'B'] : ['B', 'A']) as ('A' | 'B')[]));
  for (const [i, side] of order.entries()) {
    const gw = await startGw(side === 'A' ? dirA : dirB, redis.url, broker.bootstrap);
    try {
      if (!loaded) {
        const skus = Array.from({ length: 100 }, (_, k) => ({ sku: `SKU-${k}`, stock: 1_000_000_000, perUserLimit: 5 }));
        const r = await fetch(`http://127.0.0.1:${gw.port}/v1/admin/skus`, { method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: JSON.stringify({ skus }) });
        if (r.status !== 200) throw new Error(`load skus: ${r.status}`);
        loaded = true;
      }
      const { gen } = await GeneratorProcess.start({
        host: '127.0.0.1', port: gw.port, path: '/v1/orders', okStatus: 202, maxConnections: 256, initialConnections: 32, timeoutMs: 2000,
        userPrefix: `ab${process.pid}-${i}-`, skus: 100, idempotencyKeys: IDEM, client: 'raw',
      });
      try {
        const st = await runStep(gen, { server: gw.pid, broker: broker.proc.pid as number, redis: redis.proc.pid as number, loadgen: gen.pid }, RATE, WARMUP_MS, opts, 1);
        if (st.stats.errors.total === 0) results[side].push(st.cpuUsPerOk.server);
        process.stdout.write(
          `${side} run ${i}: gateway ${st.cpuUsPerOk.server.toFixed(0)} µs/order, broker ${st.cpuUsPerOk.broker.toFixed(0)}, redis ${st.cpuUsPerOk.redis.toFixed(0)}; ok ${st.okPerSec.toFixed(0)}/s p99 ${String(st.stats.latency.p99Ms)} ms errors ${JSON.stringify(st.stats.errors)} others ${st.cpu.othersCores.toFixed(2)} cores\n`,
        );
      } finally {
        await gen.stop();
      }
    } finally {
      await gw.stop();
    }
  }
} finally {
  await broker.kill();
  await redis.stop();
  fs.rmSync(broker.dataDir, { recursive: true, force: true });
  fs.rmSync(redis.dir, { recursive: true, force: true });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
process.stdout.write(`median gateway µs/order: A ${median(results.A).toFixed(0)}  B ${median(results.B).toFixed(0)}  (B/A ${(median(results.B) / median(results.A)).toFixed(2)})\n`);
process.exit(0);
