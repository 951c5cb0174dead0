/**
 * k6 thresholds: parsing (`http_req_duration{scenario:spike}: ['p(99)<500', {threshold:
 * 'rate>0.99', abortOnFail: true, delayAbortEval: '10s'}]`) and evaluation against the metric
 * registry. Every problem in the thresholds is reported at once; a threshold on an unknown
 * metric, or with an aggregation its metric type lacks, is an error (as in k6).
 */
import { parseDuration } from './duration.ts';
import type { MetricType, Registry, Sink, Tags } from './k6/metrics.ts';

export type Operator = '<' | '<=' | '>' | '>=' | '==' | '===' | '!=';

export interface Threshold {
  /** The metric key as written, e.g. `http_req_duration{scenario:spike}`. */
  key: string;
  metric: string;
  filter: Tags;
  /** The expression as written, e.g. `p(99)<500`. */
  source: string;
  aggregation: string;
  operator: Operator;
  value: number;
  abortOnFail: boolean;
  delayAbortEvalMs: number;
}

export class ThresholdError extends Error {
  readonly code = 'INVALID_THRESHOLDS';
  constructor(readonly problems: string[]) {
    super(`invalid thresholds:\n  - ${problems.join('\n  - ')}`);
  }
}

const EXPR = /^\s*(avg|min|max|med|count|rate|value|p\(\s*\d+(?:\.\d+)?\s*\))\s*(<=|>=|===|==|!=|<|>)\s*(-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*$/;

export function parseExpression(source: string): { aggregation: string; operator: Operator; value: number } {
  const m = EXPR.exec(source);
  if (!m) throw new Error(`'${source}' is not a threshold expression like 'p(99)<500', 'rate>0.99', 'count==0'`);
  return { aggregation: m[1].replace(/\s+/g, ''), operator: m[2] as Operator, value: Number(m[3]) };
}

export function parseMetricKey(key: string): { metric: string; filter: Tags } {
  const m = /^([a-zA-Z_][a-zA-Z0-9_]*)(?:\{(.*)\})?$/.exec(key.trim());
  if (!m) throw new Error(`'${key}' is not a metric name, optionally with {tag:value,...}`);
  const filter: Record<string, string> = {};
  if (m[2] !== undefined) {
    for (const part of m[2].split(',')) {
      const i = part.indexOf(':');
      if (i <= 0) throw new Error(`'${key}': tag filters are {tag:value,...}`);
      filter[part.slice(0, i).trim()] = part
        .slice(i + 1)
        .trim()
        .replace(/^["']|["']$/g, '');
    }
  }
  return { metric: m[1], filter };
}

export function parseThresholds(raw: unknown): Threshold[] {
  if (raw === undefined || raw === null) return [];
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ThresholdError(['options.thresholds must be an object of metric → [expressions]']);
  const out: Threshold[] = [];
  const problems: string[] = [];
  for (const [key, spec] of Object.entries(raw as Record<string, unknown>)) {
    let metric: { metric: string; filter: Tags };
    try {
      metric = parseMetricKey(key);
    } catch (err) {
      problems.push((err as Error).message);
      continue;
    }
    const items = Array.isArray(spec) ? (spec as unknown[]) : [spec];
    for (const item of items) {
      try {
        let source: string;
        let abortOnFail = false;
        let delayAbortEvalMs = 0;
        if (typeof item === 'string') source = item;
        else if (typeof item === 'object' && item !== null && typeof (item as { threshold?: unknown }).threshold === 'string') {
          const o = item as { threshold: string; abortOnFail?: unknown; delayAbortEval?: unknown };
          source = o.threshold;
          abortOnFail = o.abortOnFail === true;
          if (o.delayAbortEval !== undefined) delayAbortEvalMs = parseDuration(o.delayAbortEval, `${key} delayAbortEval`);
        } else throw new Error(`${key}: each threshold is a string or {threshold, abortOnFail?, delayAbortEval?}`);
        out.push({ key, ...metric, source, ...parseExpression(source), abortOnFail, delayAbortEvalMs });
      } catch (err) {
        problems.push(`${key}: ${(err as Error).message}`);
      }
    }
  }
  if (problems.length > 0) throw new ThresholdError(problems);
  return out;
}

const AGGREGATIONS: Record<MetricType, (a: string) => boolean> = {
  counter: (a) => a === 'count' || a === 'rate',
  gauge: (a) => a === 'value' || a === 'min' || a === 'max',
  rate: (a) => a === 'rate',
  trend: (a) => ['avg', 'min', 'max', 'med', 'count'].includes(a) || a.startsWith('p('),
};

/** Checks every threshold against the defined metrics and creates the submetrics they name. */
export function bindThresholds(thresholds: readonly Threshold[], registry: Registry): void {
  const problems: string[] = [];
  for (const t of thresholds) {
    const m = registry.get(t.metric);
    if (!m) {
      problems.push(`${t.key}: no metric named '${t.metric}' (define custom metrics in the init context)`);
      continue;
    }
    if (!AGGREGATIONS[m.type](t.aggregation)) problems.push(`${t.key}: '${t.aggregation}' is not an aggregation of a ${m.type} metric`);
    if (Object.keys(t.filter).length > 0) m.submetric(t.filter);
  }
  if (problems.length > 0) throw new ThresholdError(problems);
}

export function compare(actual: number, op: Operator, want: number): boolean {
  switch (op) {
    case '<':
      return actual < want;
    case '<=':
      return actual <= want;
    case '>':
      return actual > want;
    case '>=':
      return actual >= want;
    case '==':
    case '===':
      return actual === want;
    case '!=':
      return actual !== want;
  }
}

export interface ThresholdResult {
  threshold: Threshold;
  actual: number;
  ok: boolean;
}

export function sinkOf(t: Threshold, registry: Registry): Sink {
  const m = registry.get(t.metric);
  if (!m) throw new Error(`no metric ${t.metric}`);
  return Object.keys(t.filter).length === 0 ? m.sink : m.submetric(t.filter).sink;
}

export function evaluateThresholds(thresholds: readonly Threshold[], registry: Registry, durationS: number): ThresholdResult[] {
  return thresholds.map((t) => {
    const actual = sinkOf(t, registry).aggregate(t.aggregation, durationS);
    return { threshold: t, actual, ok: compare(actual, t.operator, t.value) };
  });
}
