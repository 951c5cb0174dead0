/**
 * Reads a k6 script's `options.scenarios` into executor configurations, with k6's defaults
 * (timeUnit 1s, gracefulStop 30s, startTime 0s, maxVUs = preAllocatedVUs, exec = default).
 * Every problem is reported at once.
 */
import { parseDuration } from './duration.ts';
import type { Stage } from './scheduler.ts';

interface Common {
  name: string;
  exec: string;
  startTimeMs: number;
  gracefulStopMs: number;
  tags: Record<string, string>;
}

export type ScenarioConfig =
  | (Common & { executor: 'constant-arrival-rate'; rate: number; timeUnitMs: number; durationMs: number; preAllocatedVUs: number; maxVUs: number })
  | (Common & { executor: 'ramping-arrival-rate'; startRate: number; timeUnitMs: number; stages: Stage[]; preAllocatedVUs: number; maxVUs: number })
  | (Common & { executor: 'shared-iterations' | 'per-vu-iterations' | 'constant-vus'; vus: number; iterations: number; durationMs: number });

export const SUPPORTED_EXECUTORS = ['constant-arrival-rate', 'ramping-arrival-rate', 'shared-iterations', 'per-vu-iterations', 'constant-vus'] as const;

export class OptionsError extends Error {
  readonly code = 'INVALID_OPTIONS';
  constructor(readonly problems: string[]) {
    super(`invalid options:\n  - ${problems.join('\n  - ')}`);
  }
}

export function parseScenarios(options: Record<string, unknown>, exported: ReadonlySet<string>): ScenarioConfig[] {
  const raw = options.scenarios;
  const problems: string[] = [];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || Object.keys(raw).length === 0) {
    throw new OptionsError(['options.scenarios is required (the runner executes constant-arrival-rate and ramping-arrival-rate scenarios; vus/duration shortcuts are not supported)']);
  }
  const out: ScenarioConfig[] = [];
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    const s = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
    const at = (f: string) => `scenarios.${name}.${f}`;
    const num = (f: string, def?: number): number => {
      const x = s[f];
      if (x === undefined && def !== undefined) return def;
      if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) {
        problems.push(`${at(f)} must be a non-negative number`);
        return 0;
      }
      return x;
    };
    const dur = (f: string, def?: string): number => {
      const x = s[f] ?? def;
      try {
        return parseDuration(x, at(f));
      } catch (err) {
        problems.push((err as Error).message);
        return 0;
      }
    };
    const exec = typeof s.exec === 'string' ? s.exec : 'default';
    if (!exported.has(exec)) problems.push(`${at('exec')}: the script exports no function '${exec}'`);
    const tags: Record<string, string> = {};
    if (typeof s.tags === 'object' && s.tags !== null) for (const [k, tv] of Object.entries(s.tags)) tags[k] = String(tv);
    const common: Common = { name, exec, startTimeMs: dur('startTime', '0s'), gracefulStopMs: dur('gracefulStop', '30s'), tags };
    const executor = s.executor;
    if (executor === 'constant-arrival-rate') {
      const pre = num('preAllocatedVUs');
      out.push({ ...common, executor, rate: num('rate'), timeUnitMs: dur('timeUnit', '1s'), durationMs: dur('duration'), preAllocatedVUs: pre, maxVUs: num('maxVUs', pre) });
    } else if (executor === 'ramping-arrival-rate') {
      const pre = num('preAllocatedVUs');
      const stages = Array.isArray(s.stages) ? (s.stages as Stage[]) : [];
      if (stages.length === 0) problems.push(`${at('stages')} must be a non-empty array of {duration, target}`);
      stages.forEach((st, i) => {
        if (typeof st !== 'object' || st === null || typeof st.target !== 'number') problems.push(`${at(`stages[${i}]`)} must be {duration, target}`);
        else
          try {
            parseDuration(st.duration, at(`stages[${i}].duration`));
          } catch (err) {
            problems.push((err as Error).message);
          }
      });
      out.push({ ...common, executor, startRate: num('startRate', 0), timeUnitMs: dur('timeUnit', '1s'), stages, preAllocatedVUs: pre, maxVUs: num('maxVUs', pre) });
    } else if (executor === 'shared-iterations' || executor === 'per-vu-iterations') {
      out.push({ ...common, executor, vus: num('vus', 1), iterations: num('iterations', 1), durationMs: dur('maxDuration', '10m') });
    } else if (executor === 'constant-vus') {
      out.push({ ...common, executor, vus: num('vus', 1), iterations: Infinity, durationMs: dur('duration') });
    } else {
      problems.push(`${at('executor')}: '${String(executor)}' is not supported here (supported: ${SUPPORTED_EXECUTORS.join(', ')}); run it with real k6`);
    }
  }
  if (problems.length > 0) throw new OptionsError(problems);
  return out;
}

/** When the last scenario's arrivals end (ms after the test start), without gracefulStop. */
export function plannedDurationMs(scenarios: readonly ScenarioConfig[]): number {
  let end = 0;
  for (const s of scenarios) {
    let d = 0;
    if (s.executor === 'constant-arrival-rate' || s.executor === 'constant-vus') d = s.durationMs;
    else if (s.executor === 'ramping-arrival-rate') d = s.stages.reduce((n, st) => n + parseDuration(st.duration), 0);
    else d = 0;
    end = Math.max(end, s.startTimeMs + d);
  }
  return end;
}
