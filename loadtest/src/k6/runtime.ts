/**
 * The k6 shim's shared state for one run: the metric registry, the per-iteration context
 * (AsyncLocalStorage, so `__VU`, `__ITER`, `k6/execution` and sample tags stay right across
 * `await`s of concurrently running iterations), response observers, checks, and an abort flag.
 *
 * It is anchored on globalThis so that every importer (the runner, and the scenario through the
 * module loader hooks) shares one instance even if a module were evaluated twice.
 */
import type { AsyncLocalStorage } from 'node:async_hooks';
import type { MetricDef, Registry as RegistryT, Tags } from './metrics.ts';

export interface IterationContext {
  scenario: string;
  /** 1-based VU id in the test (k6's `__VU`; 0 in setup/teardown). */
  vu: number;
  /** Iteration number of this VU in its scenario (k6's `__ITER`). */
  vuIteration: number;
  /** Iteration number within the scenario, across VUs. */
  iterationInScenario: number;
  /** Tags every sample of this iteration carries (scenario, group, scenario tags). */
  tags: Record<string, string>;
  /** Group path (`::a::b`). */
  group: string;
}

export interface HttpExchange {
  method: string;
  url: string;
  requestHeaders: Record<string, string>;
  requestBody: string | null;
  status: number;
  responseBody: string;
  durationMs: number;
  /** performance.now() when the response was complete. */
  endedAt: number;
  error: string;
}

export interface CheckRecord {
  name: string;
  path: string;
  passes: number;
  fails: number;
}

export type MetricObserver = (metric: MetricDef, value: number, tags: Tags) => void;

export interface Runtime {
  registry: RegistryT;
  context: AsyncLocalStorage<IterationContext>;
  observers: MetricObserver[];
  exchangeObservers: ((x: HttpExchange) => void)[];
  checks: Map<string, CheckRecord>;
  env: Record<string, string>;
  /** Set by `exec.test.abort()` or an abortOnFail threshold. */
  aborted: { reason: string } | null;
  /** Counts sync HTTP calls made while iterations run (they block the event loop). */
  syncCallsDuringRun: number;
  running: boolean;
  /** performance.now() when the test run started (after setup). */
  startedAt: number;
  nextVuId: number;
}

const KEY = Symbol.for('spillway.k6.runtime');

interface Anchored {
  [KEY]?: Runtime;
}

/** Installed once by `createRuntime`; throws if nothing installed it. */
export function runtime(): Runtime {
  const rt = (globalThis as Anchored)[KEY];
  if (!rt) throw new Error('the k6 shim runtime is not installed (run scenarios through `spillway loadtest`)');
  return rt;
}

export function installRuntime(rt: Runtime): Runtime {
  (globalThis as Anchored)[KEY] = rt;
  return rt;
}

export function currentContext(): IterationContext | undefined {
  return (globalThis as Anchored)[KEY]?.context.getStore();
}
