/**
 * The `k6/execution` module of the shim (the parts scenarios use): the current scenario, VU and
 * iteration, read from the iteration context, and `test.abort()`.
 */
import { runtime } from './runtime.ts';

function ctx() {
  return runtime().context.getStore();
}

export const scenario = {
  get name(): string {
    return ctx()?.scenario ?? '';
  },
  get iterationInTest(): number {
    return ctx()?.iterationInScenario ?? 0;
  },
  get iterationInInstance(): number {
    return ctx()?.iterationInScenario ?? 0;
  },
  get startTime(): number {
    return Math.round(performance.timeOrigin + runtime().startedAt);
  },
  get progress(): number {
    return 0;
  },
};

export const vu = {
  get idInTest(): number {
    return ctx()?.vu ?? 0;
  },
  get idInInstance(): number {
    return ctx()?.vu ?? 0;
  },
  get iterationInScenario(): number {
    return ctx()?.vuIteration ?? 0;
  },
  get iterationInInstance(): number {
    return ctx()?.vuIteration ?? 0;
  },
  get tags(): Record<string, string> {
    return ctx()?.tags ?? {};
  },
};

export const instance = {
  get currentTestRunDuration(): number {
    return performance.now() - runtime().startedAt;
  },
};

export const test = {
  abort(reason?: string): never {
    runtime().aborted = { reason: reason ?? 'test aborted' };
    throw new Error(`test aborted: ${reason ?? ''}`);
  },
  get options(): Record<string, unknown> {
    return {};
  },
};
