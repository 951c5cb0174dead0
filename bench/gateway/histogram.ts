/**
 * A log-bucketed latency histogram for the load generator: 1% relative precision from 1 µs to
 * ~17 min, constant memory, O(1) per sample, so it can record every request of a 10,000/s step
 * without sorting arrays. Quantiles are the upper edge of their bucket (at most 1% high).
 */
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
const BUCKETS = Math.ceil(Math.log(1e9) / LOG_GROWTH) + 2;

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
}

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  private maxUs = 0;
  private sumUs = 0;

  recordMs(ms: number): void {
    const us = ms < 0 ? 0 : ms * 1000;
    const b = us < 1 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log(us) / LOG_GROWTH) + 1);
    this.counts[b]++;
    this.count++;
    if (us > this.maxUs) this.maxUs = us;
    this.sumUs += us;
  }

  quantileMs(q: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.counts[b];
      if (seen >= rank) return Math.min(b === 0 ? 1 : GROWTH ** b, this.maxUs) / 1000;
    }
    return this.maxUs / 1000;
  }

  summary(): LatencySummary {
    return {
      count: this.count,
      p50Ms: this.quantileMs(0.5),
      p90Ms: this.quantileMs(0.9),
      p99Ms: this.quantileMs(0.99),
      p999Ms: this.quantileMs(0.999),
      maxMs: this.count === 0 ? Number.NaN : this.maxUs / 1000,
      meanMs: this.count === 0 ? Number.NaN : this.sumUs / this.count / 1000,
    };
  }
}
