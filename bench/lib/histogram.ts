/**
 * A log-bucketed latency histogram (1% relative precision, 1 µs to ~1,000 s) that merges across
 * processes: consumer workers record every record's produce-to-consume latency into one, send
 * its non-empty buckets to the bench, and the bench merges them before taking percentiles.
 * Constant memory and O(1) per sample, so it can sit on a consumer's hot path.
 */
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
const BUCKETS = Math.ceil(Math.log(1e9) / LOG_GROWTH) + 2;

export interface HistogramJson {
  /** [bucket, count] pairs of the non-empty buckets. */
  buckets: [number, number][];
  count: number;
  minUs: number;
  maxUs: number;
  sumUs: number;
  /** Samples below zero (a clock step between processes); counted as 0 µs. */
  negative: number;
}

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  minUs = Number.POSITIVE_INFINITY;
  maxUs = 0;
  sumUs = 0;
  negative = 0;

  record(us: number): void {
    let v = us;
    if (v < 0) {
      this.negative++;
      v = 0;
    }
    const b = v < 1 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log(v) / LOG_GROWTH) + 1);
    this.counts[b]++;
    this.count++;
    if (v < this.minUs) this.minUs = v;
    if (v > this.maxUs) this.maxUs = v;
    this.sumUs += v;
  }

  /** Records `n` samples of the same value (a batch consumed at one instant from one send stamp). */
  recordMany(us: number, n: number): void {
    if (n <= 0) return;
    let v = us;
    if (v < 0) {
      this.negative += n;
      v = 0;
    }
    const b = v < 1 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log(v) / LOG_GROWTH) + 1);
    this.counts[b] += n;
    this.count += n;
    if (v < this.minUs) this.minUs = v;
    if (v > this.maxUs) this.maxUs = v;
    this.sumUs += v * n;
  }

  merge(j: HistogramJson): void {
    for (const [b, n] of j.buckets) this.counts[b] += n;
    this.count += j.count;
    this.minUs = Math.min(this.minUs, j.minUs);
    this.maxUs = Math.max(this.maxUs, j.maxUs);
    this.sumUs += j.sumUs;
    this.negative += j.negative;
  }

  /** Upper edge of the bucket holding quantile q, in ms (at most 1% above the true value). */
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

  toJSON(): HistogramJson {
    const buckets: [number, number][] = [];
    for (let b = 0; b < BUCKETS; b++) if (this.counts[b] > 0) buckets.push([b, this.counts[b]]);
    return { buckets, count: this.count, minUs: Number.isFinite(this.minUs) ? this.minUs : 0, maxUs: this.maxUs, sumUs: this.sumUs, negative: this.negative };
  }
}
