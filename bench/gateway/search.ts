/**
 * The step search, identical for every server: run a fixed arrival rate for a warm-up plus a
 * measured window, multiply the rate by `factor` while the step passes (p99 below the limit, no
 * errors, answers keeping up with arrivals), then bisect (geometrically) between the last passing
 * and the first failing rate. A step that fails while other processes loaded the machine is run
 * again (a bounded number of times). Each step's CPU per component comes from /proc at the instants
 * the generator opens and closes its measured window.
 */
import type { GeneratorProcess } from './children.ts';
import { delta, snapshot, type CpuDelta } from './proc-cpu.ts';
import type { StepStats } from './protocol.ts';

export interface SearchOptions {
  startRate: number;
  factor: number;
  maxRate: number;
  maxSteps: number;
  refineSteps: number;
  stepMs: number;
  warmupMs: number;
  firstWarmupMs: number;
  p99LimitMs: number;
  /** Answers in the window must reach this share of the arrival rate. */
  minThroughputShare: number;
  /** Pause after a failing step so queues in the server drain before the next one. */
  settleMs: number;
  /** Above this many cores used by processes outside the bench (or stolen by the hypervisor), a step is marked contended. */
  othersCoresLimit: number;
  /** Failing contended steps are run again, at most this many times per server. */
  contendedRetries: number;
  /** Above this, the generator's own timer is called late (its CPU or the machine). */
  generatorLagLimitMs: number;
  generatorCoresLimit: number;
}

export interface StepRecord {
  rate: number;
  pass: boolean;
  /** Why it failed (empty when it passed). */
  reason: string;
  /** Answers with the expected status that arrived inside the window, per second. */
  okPerSec: number;
  stats: StepStats;
  cpu: CpuDelta;
  /** CPU µs per successful request, per component. */
  cpuUsPerOk: Record<string, number>;
  /** Read- and write-family system calls per successful request, per component. */
  syscallsPerOk: Record<string, { reads: number; writes: number }>;
  /** The generator ran late or near a full core: the step may be generator- or machine-bound. */
  generatorLimited: boolean;
  /** Other processes (or the hypervisor) took more than othersCoresLimit during the window. */
  contended: boolean;
  /** CLOCK_MONOTONIC µs of the window's start and end (to cut a CPU profile to it). */
  windowUs: { fromUs: number; toUs: number };
}

export interface SearchResult {
  best: StepRecord | null;
  firstFail: StepRecord | null;
  steps: StepRecord[];
}

const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/** Runs one step at `rate` and judges it. `pids` name every process whose CPU is reported. */
export async function runStep(
  gen: GeneratorProcess,
  pids: Readonly<Record<string, number>>,
  rate: number,
  warmupMs: number,
  opts: SearchOptions,
  id: number,
): Promise<StepRecord> {
  const all = { ...pids, bench: process.pid };
  let a: ReturnType<typeof snapshot> | undefined;
  let b: ReturnType<typeof snapshot> | undefined;
  const windowUs = { fromUs: Number.NaN, toUs: Number.NaN };
  const stats = await gen.step({ id, rate, warmupMs, durationMs: opts.stepMs }, (phase) => {
    if (phase === 'start') {
      windowUs.fromUs = monotonicUs();
      a = snapshot(all);
    } else {
      windowUs.toUs = monotonicUs();
      b = snapshot(all);
    }
  });
  if (a === undefined || b === undefined) throw new Error(`step ${id} ended without both window marks`);
  const cpu = delta(a, b);
  const okPerSec = stats.okCompletedInWindow / (stats.windowMs / 1000);
  const cpuUsPerOk: Record<string, number> = {};
  const syscallsPerOk: Record<string, { reads: number; writes: number }> = {};
  const n = stats.okCompletedInWindow > 0 ? stats.okCompletedInWindow : Number.NaN;
  for (const [name, ms] of Object.entries(cpu.cpuMs)) {
    cpuUsPerOk[name] = (ms * 1000) / n;
    syscallsPerOk[name] = { reads: cpu.syscalls[name].reads / n, writes: cpu.syscalls[name].writes / n };
  }
  const reasons: string[] = [];
  if (stats.errors.total > 0) {
    const parts = [
      ...Object.entries(stats.errors.byStatus).map(([s, n]) => `${n}x HTTP ${s}`),
      ...(['timeout', 'socket', 'protocol'] as const).filter((k) => stats.errors[k] > 0).map((k) => `${stats.errors[k]}x ${k}`),
    ];
    reasons.push(`errors: ${parts.join(', ')}`);
  }
  if (!(stats.latency.p99Ms < opts.p99LimitMs)) reasons.push(`p99 ${stats.latency.p99Ms.toFixed(1)} ms`);
  if (okPerSec < opts.minThroughputShare * rate) reasons.push(`answered ${Math.round(okPerSec)}/s of ${rate}/s`);
  const generatorLimited = stats.dispatchLag.p99Ms > opts.generatorLagLimitMs || (cpu.cores.loadgen ?? 0) > opts.generatorCoresLimit;
  const contended = cpu.othersCores + cpu.stealCores > opts.othersCoresLimit;
  return { rate, pass: reasons.length === 0, reason: reasons.join('; '), okPerSec, stats, cpu, cpuUsPerOk, syscallsPerOk, generatorLimited, contended, windowUs };
}

export async function findMaxRate(
  gen: GeneratorProcess,
  pids: Readonly<Record<string, number>>,
  opts: SearchOptions,
  onStep: (r: StepRecord) => void,
  between?: () => Promise<void>,
): Promise<SearchResult> {
  const steps: StepRecord[] = [];
  let best: StepRecord | null = null;
  let firstFail: StepRecord | null = null;
  let retries = 0;
  const step = async (rate: number): Promise<StepRecord> => {
    await between?.();
    for (;;) {
      const r = await runStep(gen, pids, rate, steps.length === 0 ? opts.firstWarmupMs : opts.warmupMs, opts, steps.length + 1);
      steps.push(r);
      onStep(r);
      if (r.pass) return r;
      await new Promise((res) => setTimeout(res, opts.settleMs));
      // A failure while other processes were using the machine says little, nor does one on a
      // cold server (its first step, JIT and connections still warming): retry (bounded).
      const cold = steps.length === 1;
      if (!cold && (!r.contended || retries >= opts.contendedRetries)) return r;
      if (!cold) retries++;
      await between?.();
    }
  };

  let rate = opts.startRate;
  while (steps.length < opts.maxSteps && rate <= opts.maxRate) {
    const r = await step(rate);
    if (!r.pass) {
      firstFail = r;
      break;
    }
    best = r;
    rate = Math.round(rate * opts.factor);
  }
  // Even the start rate failed: step down a few times.
  for (let down = 0; best === null && firstFail !== null && down < 3; down++) {
    const r = await step(Math.max(1, Math.round(firstFail.rate / opts.factor)));
    if (r.pass) best = r;
    else firstFail = r;
  }
  for (let i = 0; i < opts.refineSteps && best !== null && firstFail !== null; i++) {
    const mid = Math.round(Math.sqrt(best.rate * firstFail.rate));
    if (mid <= best.rate || mid >= firstFail.rate) break;
    const r = await step(mid);
    if (r.pass) best = r;
    else firstFail = r;
  }
  return { best, firstFail, steps };
}
