/** Threshold parsing and evaluation against the shim's metric sinks, and k6's percentile rule. */
import { beforeEach, describe, expect, it } from 'vitest';
import { createRuntime } from '../src/k6/builtin.ts';
import { percentile, type Registry } from '../src/k6/metrics.ts';
import { bindThresholds, evaluateThresholds, parseExpression, parseMetricKey, parseThresholds, ThresholdError } from '../src/thresholds.ts';

describe('threshold expressions', () => {
  it.each([
    ['p(99)<500', 'p(99)', '<', 500],
    ['p(99.9) <= 1200', 'p(99.9)', '<=', 1200],
    ['rate>0.99', 'rate', '>', 0.99],
    ['count==0', 'count', '==', 0],
    ['count===10', 'count', '===', 10],
    ['avg!=3', 'avg', '!=', 3],
    ['med>=-1.5', 'med', '>=', -1.5],
    ['value<1e3', 'value', '<', 1000],
  ])('%s', (src, agg, op, value) => {
    expect(parseExpression(src)).toEqual({ aggregation: agg, operator: op, value });
  });

  it.each(['p99<500', 'p(99)', 'rate > ', 'avg ~ 3', 'mean<3', ''])('refuses %j', (src) => {
    expect(() => parseExpression(src)).toThrow(/threshold expression/);
  });

  it('metric keys with tag filters', () => {
    expect(parseMetricKey('http_req_duration')).toEqual({ metric: 'http_req_duration', filter: {} });
    expect(parseMetricKey('http_req_duration{name:POST /v1/orders}')).toEqual({ metric: 'http_req_duration', filter: { name: 'POST /v1/orders' } });
    expect(parseMetricKey('orders{phase:end, code:"SOLD_OUT"}')).toEqual({ metric: 'orders', filter: { phase: 'end', code: 'SOLD_OUT' } });
    expect(() => parseMetricKey('bad name')).toThrow();
  });

  it('string, array and object forms; every problem reported at once', () => {
    const t = parseThresholds({
      http_req_duration: 'p(95)<200',
      checks: ['rate>0.99', { threshold: 'rate>0.5', abortOnFail: true, delayAbortEval: '10s' }],
    });
    expect(t.map((x) => [x.key, x.source, x.abortOnFail, x.delayAbortEvalMs])).toEqual([
      ['http_req_duration', 'p(95)<200', false, 0],
      ['checks', 'rate>0.99', false, 0],
      ['checks', 'rate>0.5', true, 10_000],
    ]);
    let err: unknown;
    try {
      parseThresholds({ a: ['p(99)<1', 'nonsense'], b: [42], 'c d': ['rate>1'] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ThresholdError);
    expect((err as ThresholdError).problems).toHaveLength(3);
  });
});

describe('evaluation', () => {
  let reg: Registry;
  beforeEach(() => {
    reg = createRuntime({}).registry;
  });

  it('k6 percentiles interpolate between the closest ranks', () => {
    const sorted = Float64Array.from([10, 20, 30, 40]);
    expect(percentile(sorted, 0)).toBe(10);
    expect(percentile(sorted, 50)).toBe(25);
    expect(percentile(sorted, 90)).toBeCloseTo(37, 9);
    expect(percentile(sorted, 100)).toBe(40);
    expect(percentile(Float64Array.from([7]), 99)).toBe(7);
  });

  it('trend, counter, rate and gauge thresholds', () => {
    const d = reg.get('http_req_duration')!;
    for (let i = 1; i <= 100; i++) d.add(i, { name: i <= 90 ? 'fast' : 'slow' });
    reg.get('http_req_failed')!.add(0, {});
    reg.get('http_req_failed')!.add(1, {});
    reg.get('dropped_iterations')!.add(3, {});
    reg.define('backlog', 'gauge').add(7, {});
    const thresholds = parseThresholds({
      http_req_duration: ['p(99)<100', 'p(99)<99', 'avg==50.5', 'max<=100'],
      http_req_failed: ['rate<0.6', 'rate<0.5'],
      dropped_iterations: ['count==0', 'rate<1000'],
      backlog: ['value<10'],
    });
    bindThresholds(thresholds, reg);
    const r = evaluateThresholds(thresholds, reg, 2);
    const byExpr = Object.fromEntries(r.map((x) => [`${x.threshold.key} ${x.threshold.source}`, x.ok]));
    expect(byExpr).toEqual({
      'http_req_duration p(99)<100': true, // p(99) of 1..100 = 99.01
      'http_req_duration p(99)<99': false,
      'http_req_duration avg==50.5': true,
      'http_req_duration max<=100': true,
      'http_req_failed rate<0.6': true,
      'http_req_failed rate<0.5': false,
      'dropped_iterations count==0': false,
      'dropped_iterations rate<1000': true,
      'backlog value<10': true,
    });
  });

  it('submetrics bound before the samples see exactly the matching ones', () => {
    const thresholds = parseThresholds({ 'http_req_duration{name:fast}': ['max<=90', 'count==90'] });
    bindThresholds(thresholds, reg);
    const d = reg.get('http_req_duration')!;
    for (let i = 1; i <= 100; i++) d.add(i, { name: i <= 90 ? 'fast' : 'slow', scenario: 's' });
    expect(evaluateThresholds(thresholds, reg, 1).every((x) => x.ok)).toBe(true);
  });

  it('unknown metrics and aggregations the metric type lacks are errors', () => {
    const t = parseThresholds({ nope: ['count>0'], http_reqs: ['p(99)<1'], checks: ['avg>1'] });
    expect(() => bindThresholds(t, reg)).toThrow(ThresholdError);
    try {
      bindThresholds(t, reg);
    } catch (e) {
      expect((e as ThresholdError).problems).toEqual([
        "nope: no metric named 'nope' (define custom metrics in the init context)",
        "http_reqs: 'p(99)' is not an aggregation of a counter metric",
        "checks: 'avg' is not an aggregation of a rate metric",
      ]);
    }
  });
});
