/**
 * Runs one k6 script in this process: load it with the shim, read its scenarios and thresholds,
 * call setup(), run every scenario's executor concurrently (open model for arrival rates),
 * print a live progress line, evaluate thresholds (abortOnFail ones every second), call
 * teardown() and handleSummary(data). The caller (main.ts) owns the stack, the verifier and the
 * report; this module talks to nothing but the script and the shim.
 */
import { percentile } from './k6/metrics.ts';
import { createRuntime } from './k6/builtin.ts';
import { closeAgent } from './k6/http.ts';
import { loadScript, type Script } from './k6/loader.ts';
import type { IterationContext } from './k6/runtime.ts';
import { stopSyncWorker } from './k6/sync-fetch.ts';
import { formatDuration } from './duration.ts';
import { parseScenarios, plannedDurationMs, type ScenarioConfig } from './options.ts';
import { Recorder } from './recorder.ts';
import { constantArrivalSchedule, rampingArrivalSchedule, runArrivals, runLoops, VuPool, type ArrivalSchedule, type ExecutorResult, type Vu } from './scheduler.ts';
import { buildSummary, DEFAULT_TREND_STATS, type SummaryData } from './summary.ts';
import { bindThresholds, compare, evaluateThresholds, parseThresholds, sinkOf, type ThresholdResult } from './thresholds.ts';

export interface RunOptions {
  scriptPath: string;
  env: Record<string, string>;
  /** Receives the live progress line once a second (null: no progress). */
  progress: ((line: string, final: boolean) => void) | null;
  /** Extra text for the progress line (e.g. backlog and ETA from the poller). */
  statusSuffix?: () => string;
  /** Called after the script is loaded and its options are read, before setup() (e.g. to start a stack). */
  beforeSetup?: (script: Script) => Promise<void>;
  /** Called once the test starts (after setup), with the recorder. */
  onStart?: (recorder: Recorder) => void;
  log?: (line: string) => void;
}

export interface RunResult {
  script: Script;
  scenarios: ScenarioConfig[];
  setupData: unknown;
  summary: SummaryData;
  thresholds: ThresholdResult[];
  thresholdsOk: boolean;
  recorder: Recorder;
  executors: Record<string, ExecutorResult>;
  durationMs: number;
  aborted: string | null;
  scriptErrors: number;
  syncCallsDuringRun: number;
  /** What handleSummary returned (path or "stdout"/"stderr" → content), if the script has one. */
  summaryOutputs: Record<string, string> | null;
}

const MAX_ERRORS_SHOWN = 10;

export async function runScript(opts: RunOptions): Promise<RunResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const rt = createRuntime(opts.env);
  const script = await loadScript(opts.scriptPath);
  const scenarios = parseScenarios(script.options, new Set(script.functions.keys()));
  const thresholds = parseThresholds(script.options.thresholds);
  bindThresholds(thresholds, rt.registry);
  const trendStats = Array.isArray(script.options.summaryTrendStats) ? (script.options.summaryTrendStats as string[]) : DEFAULT_TREND_STATS;
  const reg = rt.registry;

  await opts.beforeSetup?.(script);
  let setupData: unknown = undefined;
  if (script.setup) {
    const raw = await script.setup();
    // k6 hands each VU a JSON copy of what setup returned.
    setupData = raw === undefined ? undefined : (JSON.parse(JSON.stringify(raw)) as unknown);
  }

  rt.startedAt = performance.now();
  rt.running = true;
  const recorder = new Recorder(() => rt.startedAt);
  rt.exchangeObservers.push((x) => recorder.observe(x));
  opts.onStart?.(recorder);

  let scriptErrors = 0;
  const pools: VuPool[] = [];
  const planned = plannedDurationMs(scenarios);
  const runOne = async (s: ScenarioConfig): Promise<[string, ExecutorResult]> => {
    const fn = script.functions.get(s.exec);
    if (!fn) throw new Error(`no exported function ${s.exec}`);
    const arrivalRate = s.executor === 'constant-arrival-rate' || s.executor === 'ramping-arrival-rate';
    const pool = new VuPool(arrivalRate ? s.preAllocatedVUs : s.vus, arrivalRate ? Math.max(s.maxVUs, s.preAllocatedVUs) : s.vus, () => rt.nextVuId++);
    pools.push(pool);
    const tags = { scenario: s.name, ...s.tags };
    const iterate = async (vu: Vu, k: number) => {
      const ctx: IterationContext = { scenario: s.name, vu: vu.id, vuIteration: vu.iterations++, iterationInScenario: k, tags, group: '' };
      recorder.arrival();
      const t0 = performance.now();
      try {
        await rt.context.run(ctx, () => fn(setupData));
      } catch (err) {
        scriptErrors += 1;
        if (scriptErrors <= MAX_ERRORS_SHOWN) log(`error in ${s.name} iteration ${k} (VU ${vu.id}): ${(err as Error).stack ?? String(err)}`);
        if (scriptErrors === MAX_ERRORS_SHOWN) log('(further iteration errors are counted, not shown)');
      } finally {
        reg.get('iterations')?.add(1, tags);
        reg.get('iteration_duration')?.add(performance.now() - t0, tags);
      }
    };
    const control = {
      stopped: () => rt.aborted !== null,
      onDropped: () => {
        recorder.dropped();
        reg.get('dropped_iterations')?.add(1, tags);
      },
    };
    let result: ExecutorResult;
    if (s.executor === 'constant-arrival-rate' || s.executor === 'ramping-arrival-rate') {
      const schedule: ArrivalSchedule =
        s.executor === 'constant-arrival-rate' ? constantArrivalSchedule(s.rate, s.timeUnitMs, s.durationMs) : rampingArrivalSchedule(s.startRate, s.timeUnitMs, s.stages);
      result = await runArrivals(schedule, pool, s, iterate, control);
    } else {
      result = await runLoops(s.executor, pool, { ...s, vus: s.vus }, iterate, control);
    }
    return [s.name, result];
  };

  // Once a second: VU gauges, abortOnFail thresholds, the progress line.
  const aborters = thresholds.filter((t) => t.abortOnFail);
  const tick = (final = false) => {
    const elapsed = performance.now() - rt.startedAt;
    const active = pools.reduce((n, p) => n + p.active, 0);
    const allocated = pools.reduce((n, p) => n + p.allocated, 0);
    reg.get('vus')?.add(active, {});
    reg.get('vus_max')?.add(allocated, {});
    recorder.vus(active);
    for (const t of aborters) {
      if (rt.aborted !== null || elapsed < t.delayAbortEvalMs) continue;
      const actual = sinkOf(t, reg).aggregate(t.aggregation, elapsed / 1000);
      if (!compare(actual, t.operator, t.value)) rt.aborted = { reason: `threshold ${t.key} '${t.source}' crossed (abortOnFail)` };
    }
    if (opts.progress) {
      const lat = Float64Array.from(recorder.recentLatencies(5)).sort();
      const arrivalsPerS = recorder.lastSecondArrivals();
      const rejected = [...recorder.rejected.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([c, n]) => `${c} ${n}`)
        .join(', ');
      const dropped = reg.get('dropped_iterations');
      const droppedN = dropped ? dropped.sink.aggregate('count', 1) : 0;
      const line =
        `[${formatDuration(elapsed)}/${formatDuration(planned)}] ${arrivalsPerS}/s  VUs ${active}/${allocated}  p99 ${lat.length ? percentile(lat, 99).toFixed(0) : '-'}ms` +
        `  accepted ${recorder.acceptedCount}  rejected ${recorder.rejectedCount}${rejected ? ` (${rejected})` : ''}  errors ${recorder.noAnswer + scriptErrors}  dropped ${droppedN}` +
        (opts.statusSuffix?.() ?? '');
      opts.progress(line, final);
    }
  };
  const ticker = setInterval(() => tick(), 1000);
  let results: [string, ExecutorResult][];
  try {
    results = await Promise.all(scenarios.map(runOne));
  } finally {
    clearInterval(ticker);
  }
  tick(true);
  const durationMs = performance.now() - rt.startedAt;
  recorder.markLoadEnd();
  rt.running = false;

  if (script.teardown) await script.teardown(setupData);
  const evaluated = evaluateThresholds(thresholds, reg, durationMs / 1000);
  const summary = buildSummary({
    registry: reg,
    checks: rt.checks.values(),
    results: evaluated,
    trendStats,
    durationMs,
    tty: { stdout: process.stdout.isTTY === true, stderr: process.stderr.isTTY === true },
  });
  let summaryOutputs: Record<string, string> | null = null;
  if (script.handleSummary) {
    const out = await script.handleSummary(summary);
    if (typeof out === 'object' && out !== null) {
      summaryOutputs = {};
      for (const [k, v] of Object.entries(out)) summaryOutputs[k] = typeof v === 'string' ? v : JSON.stringify(v);
    }
  }
  await closeAgent();
  await stopSyncWorker();
  return {
    script,
    scenarios,
    setupData,
    summary,
    thresholds: evaluated,
    thresholdsOk: evaluated.every((r) => r.ok),
    recorder,
    executors: Object.fromEntries(results),
    durationMs,
    aborted: rt.aborted?.reason ?? null,
    scriptErrors,
    syncCallsDuringRun: rt.syncCallsDuringRun,
    summaryOutputs,
  };
}
