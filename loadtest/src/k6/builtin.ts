/**
 * Creates and installs the runtime of one run, with k6's built-in metrics registered under
 * k6's names, so thresholds and summaries read the same in the shim and in real k6.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Registry, type MetricDef } from './metrics.ts';
import { installRuntime, type IterationContext, type Runtime } from './runtime.ts';

export interface Builtins {
  httpReqs: MetricDef;
  httpReqDuration: MetricDef;
  httpReqWaiting: MetricDef;
  httpReqFailed: MetricDef;
  iterations: MetricDef;
  iterationDuration: MetricDef;
  droppedIterations: MetricDef;
  checks: MetricDef;
  vus: MetricDef;
  vusMax: MetricDef;
  dataSent: MetricDef;
  dataReceived: MetricDef;
}

export function builtins(registry: Registry): Builtins {
  return {
    httpReqs: registry.define('http_reqs', 'counter'),
    httpReqDuration: registry.define('http_req_duration', 'trend', 'time'),
    httpReqWaiting: registry.define('http_req_waiting', 'trend', 'time'),
    httpReqFailed: registry.define('http_req_failed', 'rate'),
    iterations: registry.define('iterations', 'counter'),
    iterationDuration: registry.define('iteration_duration', 'trend', 'time'),
    droppedIterations: registry.define('dropped_iterations', 'counter'),
    checks: registry.define('checks', 'rate'),
    vus: registry.define('vus', 'gauge'),
    vusMax: registry.define('vus_max', 'gauge'),
    dataSent: registry.define('data_sent', 'counter', 'data'),
    dataReceived: registry.define('data_received', 'counter', 'data'),
  };
}

export function createRuntime(env: Record<string, string>): Runtime {
  const registry = new Registry();
  const rt: Runtime = {
    registry,
    context: new AsyncLocalStorage<IterationContext>(),
    observers: [],
    exchangeObservers: [],
    checks: new Map(),
    env,
    aborted: null,
    syncCallsDuringRun: 0,
    running: false,
    startedAt: performance.now(),
    nextVuId: 1,
  };
  installRuntime(rt);
  builtins(registry);
  return rt;
}
