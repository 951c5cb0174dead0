/**
 * The `k6` module of the shim: check, sleep, group, fail.
 *
 * `sleep` cannot block one VU without blocking them all in one Node process, so inside an
 * iteration it returns a Promise (write `await sleep(1)`; in real k6 awaiting its undefined result
 * is harmless). Outside iterations (setup, teardown) it blocks like k6's.
 */
import { sampleTags } from './metrics.ts';
import { runtime } from './runtime.ts';

type Checkers<T> = Record<string, (value: T) => unknown>;

export function check<T>(value: T, sets: Checkers<T>, tags?: Record<string, string>): boolean {
  const rt = runtime();
  const metric = rt.registry.get('checks');
  const ctx = rt.context.getStore();
  let all = true;
  for (const [name, fn] of Object.entries(sets)) {
    let ok: boolean;
    try {
      ok = Boolean(fn(value));
    } catch {
      ok = false;
    }
    if (!ok) all = false;
    const key = `${ctx?.group ?? ''}::${name}`;
    let rec = rt.checks.get(key);
    if (!rec) {
      rec = { name, path: key, passes: 0, fails: 0 };
      rt.checks.set(key, rec);
    }
    if (ok) rec.passes += 1;
    else rec.fails += 1;
    metric?.add(ok ? 1 : 0, { ...sampleTags(tags), check: name });
  }
  return all;
}

function blockFor(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function sleep(seconds: number): Promise<void> | undefined {
  const ms = Math.max(0, seconds * 1000);
  if (runtime().context.getStore() === undefined) {
    blockFor(ms);
    return undefined;
  }
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `fn` with the group appended to the sample tags (synchronous functions, as k6 advises). */
export function group<T>(name: string, fn: () => T): T {
  const rt = runtime();
  const ctx = rt.context.getStore();
  const groupPath = `${ctx?.group ?? ''}::${name}`;
  const base = ctx ?? { scenario: '', vu: 0, vuIteration: 0, iterationInScenario: 0, tags: {}, group: '' };
  return rt.context.run({ ...base, group: groupPath, tags: { ...base.tags, group: groupPath } }, fn);
}

export function fail(message?: string): never {
  throw new Error(message ?? 'fail() called');
}

export function randomSeed(_seed: number): void {
  // Math.random cannot be seeded in Node; accepted for script compatibility.
}
