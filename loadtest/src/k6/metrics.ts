/**
 * The metric model of the k6 shim: Counter, Gauge, Rate and Trend (the `k6/metrics` module) with
 * k6's sinks and aggregations, a registry of every metric of a run, and submetrics (a metric
 * filtered by tags, as thresholds name them: `http_req_duration{scenario:spike}`).
 *
 * Invariant: a sample is added to its metric's sink and to every submetric whose tag filter it
 * matches, so aggregations over submetrics equal aggregations over the filtered samples.
 * Depends on nothing but its own folder.
 */
import { runtime } from './runtime.ts';

export type MetricType = 'counter' | 'gauge' | 'rate' | 'trend';
export type ValueType = 'default' | 'time' | 'data';
export type Tags = Readonly<Record<string, string>>;

export interface Sink {
  add(value: number): void;
  /** The aggregation named in a threshold (`p(99)`, `avg`, `count`, `rate`, `value`, ...). */
  aggregate(name: string, durationS: number): number;
  /** The values shown in a summary (k6's `metrics[name].values`). */
  values(trendStats: readonly string[], durationS: number): Record<string, number>;
}

export class CounterSink implements Sink {
  count = 0;
  add(v: number): void {
    this.count += v;
  }
  aggregate(name: string, durationS: number): number {
    if (name === 'count') return this.count;
    if (name === 'rate') return durationS > 0 ? this.count / durationS : 0;
    throw new Error(`counter metrics have count and rate, not ${name}`);
  }
  values(_stats: readonly string[], durationS: number): Record<string, number> {
    return { count: this.count, rate: this.aggregate('rate', durationS) };
  }
}

export class GaugeSink implements Sink {
  value = 0;
  min = Infinity;
  max = -Infinity;
  add(v: number): void {
    this.value = v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }
  aggregate(name: string): number {
    if (name === 'value') return this.value;
    if (name === 'min') return Number.isFinite(this.min) ? this.min : 0;
    if (name === 'max') return Number.isFinite(this.max) ? this.max : 0;
    throw new Error(`gauge metrics have value, min and max, not ${name}`);
  }
  values(): Record<string, number> {
    return { value: this.value, min: this.aggregate('min'), max: this.aggregate('max') };
  }
}

export class RateSink implements Sink {
  passes = 0;
  fails = 0;
  add(v: number): void {
    if (v !== 0) this.passes += 1;
    else this.fails += 1;
  }
  get rate(): number {
    const n = this.passes + this.fails;
    return n === 0 ? 0 : this.passes / n;
  }
  aggregate(name: string): number {
    if (name === 'rate') return this.rate;
    throw new Error(`rate metrics have rate, not ${name}`);
  }
  values(): Record<string, number> {
    return { rate: this.rate, passes: this.passes, fails: this.fails };
  }
}

/** k6's percentile: linear interpolation between the closest ranks of the sorted samples. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return 0;
  if (n === 1) return sorted[0];
  const i = (p / 100) * (n - 1);
  const lo = Math.floor(i);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo);
}

export class TrendSink implements Sink {
  private data = new Float64Array(1024);
  private n = 0;
  private sum = 0;
  private sortedCache: Float64Array | null = null;
  add(v: number): void {
    if (this.n === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.n++] = v;
    this.sum += v;
    this.sortedCache = null;
  }
  get count(): number {
    return this.n;
  }
  private sorted(): Float64Array {
    if (this.sortedCache === null) this.sortedCache = this.data.slice(0, this.n).sort();
    return this.sortedCache;
  }
  aggregate(name: string): number {
    const pm = /^p\((\d+(?:\.\d+)?)\)$/.exec(name);
    if (pm) return percentile(this.sorted(), Number(pm[1]));
    switch (name) {
      case 'avg':
        return this.n === 0 ? 0 : this.sum / this.n;
      case 'min':
        return this.n === 0 ? 0 : this.sorted()[0];
      case 'max':
        return this.n === 0 ? 0 : this.sorted()[this.n - 1];
      case 'med':
        return percentile(this.sorted(), 50);
      case 'count':
        return this.n;
      default:
        throw new Error(`trend metrics have avg, min, med, max, count and p(N), not ${name}`);
    }
  }
  values(stats: readonly string[]): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of stats) out[s] = this.aggregate(s);
    return out;
  }
}

export function newSink(type: MetricType): Sink {
  switch (type) {
    case 'counter':
      return new CounterSink();
    case 'gauge':
      return new GaugeSink();
    case 'rate':
      return new RateSink();
    case 'trend':
      return new TrendSink();
  }
}

export interface Submetric {
  /** e.g. `http_req_duration{scenario:spike}` */
  name: string;
  filter: Tags;
  sink: Sink;
}

export class MetricDef {
  readonly sink: Sink;
  readonly submetrics: Submetric[] = [];
  constructor(
    readonly name: string,
    readonly type: MetricType,
    readonly contains: ValueType,
  ) {
    this.sink = newSink(type);
  }

  add(value: number, tags: Tags): void {
    this.sink.add(value);
    for (const sub of this.submetrics) {
      let match = true;
      for (const k in sub.filter) {
        if (tags[k] !== sub.filter[k]) {
          match = false;
          break;
        }
      }
      if (match) sub.sink.add(value);
    }
    runtime().observers.forEach((o) => o(this, value, tags));
  }

  /** The submetric for this tag filter, created on first use. */
  submetric(filter: Tags): Submetric {
    const name = `${this.name}{${Object.entries(filter)
      .map(([k, v]) => `${k}:${v}`)
      .join(',')}}`;
    let sub = this.submetrics.find((s) => s.name === name);
    if (!sub) {
      sub = { name, filter, sink: newSink(this.type) };
      this.submetrics.push(sub);
    }
    return sub;
  }
}

const METRIC_NAME = /^[a-zA-Z_][a-zA-Z0-9_]{0,127}$/;

export class Registry {
  readonly metrics = new Map<string, MetricDef>();

  define(name: string, type: MetricType, contains: ValueType = 'default'): MetricDef {
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name '${name}': letters, digits and _ (at most 128), not starting with a digit`);
    const existing = this.metrics.get(name);
    if (existing) {
      if (existing.type !== type) throw new Error(`metric '${name}' already exists as a ${existing.type}`);
      return existing;
    }
    const m = new MetricDef(name, type, contains);
    this.metrics.set(name, m);
    return m;
  }

  get(name: string): MetricDef | undefined {
    return this.metrics.get(name);
  }
}

/** The tags every sample of the current iteration carries (scenario, group) merged with `extra`. */
function sampleTags(extra: Record<string, string | number | boolean> | undefined): Tags {
  const ctx = runtime().context.getStore();
  const tags: Record<string, string> = ctx ? { ...ctx.tags } : {};
  if (extra) for (const [k, v] of Object.entries(extra)) tags[k] = String(v);
  return tags;
}

abstract class CustomMetric {
  readonly name: string;
  protected readonly def: MetricDef;
  protected constructor(name: string, type: MetricType, isTime: boolean | undefined) {
    this.def = runtime().registry.define(name, type, isTime ? 'time' : 'default');
    this.name = name;
  }
  add(value: number | boolean, tags?: Record<string, string | number | boolean>): void {
    this.def.add(Number(value), sampleTags(tags));
  }
}

/** `new Counter(name)`: a sum (count, rate per second). */
export class Counter extends CustomMetric {
  constructor(name: string, isTime?: boolean) {
    super(name, 'counter', isTime);
  }
}

/** `new Gauge(name)`: the last value (and min, max). */
export class Gauge extends CustomMetric {
  constructor(name: string, isTime?: boolean) {
    super(name, 'gauge', isTime);
  }
}

/** `new Rate(name)`: the share of non-zero values. */
export class Rate extends CustomMetric {
  constructor(name: string, isTime?: boolean) {
    super(name, 'rate', isTime);
  }
}

/** `new Trend(name, isTime)`: every value kept, for avg/min/med/max/p(N). */
export class Trend extends CustomMetric {
  constructor(name: string, isTime?: boolean) {
    super(name, 'trend', isTime);
  }
}

export { sampleTags };
