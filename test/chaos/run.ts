/**
 * `npm run chaos`: the fault-injection run at a larger scale than CI's, settable by env:
 *
 *   CHAOS_SEED (random), CHAOS_RATE (orders/s, 300), CHAOS_DRAINER_RATE (150), CHAOS_DOWNSTREAM_RATE (200), CHAOS_DOWNSTREAM_LATENCY_MS (50),
 *   CHAOS_REPEAT (injections per fault, 3), CHAOS_FAULTS (comma list, all), CHAOS_GATEWAYS (2), CHAOS_DRAINERS (2),
 *   CHAOS_OUTAGE_MS (min-max, 1000-5000), CHAOS_GAP_MS (min-max, 2000-8000), CHAOS_TMPFS_MB (256),
 *   CHAOS_DRAIN_TIMEOUT_S (600)
 *
 * Prints one row per fault and exits 1 if anything was lost or oversold, a 500 or a hang was seen,
 * a process did not come back, or the drain did not finish.
 */
import { FAULTS, reportTable, runChaos, type Fault } from './chaos.ts';
import { liveStacks } from './stack.ts';

// Ctrl-C: stop the stack's processes and unmount its tmpfs before leaving.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void Promise.allSettled([...liveStacks].map((s) => s.stop())).then(() => process.exit(130));
  });
}

const env = process.env;
const num = (name: string, dflt: number): number => {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    process.stderr.write(`${name}=${v}: expected a non-negative number\n`);
    process.exit(2);
  }
  return n;
};
const range = (name: string, dflt: [number, number]): [number, number] => {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const m = /^(\d+)-(\d+)$/.exec(v);
  if (m === null || Number(m[1]) > Number(m[2])) {
    process.stderr.write(`${name}=${v}: expected MIN-MAX in ms\n`);
    process.exit(2);
  }
  return [Number(m[1]), Number(m[2])];
};
const faults = (env.CHAOS_FAULTS ?? '').split(',').filter((f) => f !== '');
const unknown = faults.filter((f) => !(FAULTS as readonly string[]).includes(f));
if (unknown.length > 0) {
  process.stderr.write(`CHAOS_FAULTS: unknown ${unknown.join(', ')} (known: ${FAULTS.join(', ')})\n`);
  process.exit(2);
}

const report = await runChaos({
  seed: num('CHAOS_SEED', Math.floor(Math.random() * 2 ** 31)),
  rate: num('CHAOS_RATE', 300),
  drainerRate: num('CHAOS_DRAINER_RATE', 150),
  downstreamRate: num('CHAOS_DOWNSTREAM_RATE', 200),
  downstreamLatencyMs: num('CHAOS_DOWNSTREAM_LATENCY_MS', 50),
  gateways: Math.max(1, num('CHAOS_GATEWAYS', 2)),
  drainers: Math.max(1, num('CHAOS_DRAINERS', 2)),
  repeat: Math.max(1, num('CHAOS_REPEAT', 3)),
  faults: faults.length > 0 ? (faults as Fault[]) : FAULTS,
  outageMs: range('CHAOS_OUTAGE_MS', [1000, 5000]),
  gapMs: range('CHAOS_GAP_MS', [2000, 8000]),
  tmpfsMb: num('CHAOS_TMPFS_MB', 256),
  drainTimeoutMs: num('CHAOS_DRAIN_TIMEOUT_S', 600) * 1000,
  recoveryTimeoutMs: 120_000,
  poisonRatio: 0.01,
  hangMs: 20_000,
  log: (line) => process.stdout.write(`${line}\n`),
});
process.stdout.write(`\n${reportTable(report)}\n`);
process.exit(report.ok ? 0 : 1);
