/**
 * Circuit breaker per downstream (per process): after `threshold` consecutive failures it opens
 * for a cool-down that doubles while probes keep failing (up to maxMs); the first delivery after
 * the cool-down is the probe, and a success closes it. Failures during the cool-down (deliveries
 * that were already in flight when it opened: with concurrency 50 a dead downstream fails them all
 * at once) are not probes and neither reopen nor lengthen it — otherwise a 2 s outage would
 * escalate the pause to maxMs at once. Pure: the clock is a parameter.
 */
export class CircuitBreaker {
  state: 'closed' | 'open' = 'closed';
  private failures = 0;
  private cooldownMs: number;
  private openUntil = 0;

  constructor(
    private readonly threshold = 5,
    private readonly baseMs = 1000,
    private readonly maxMs = 30_000,
  ) {
    this.cooldownMs = baseMs;
  }

  /** Records a failure; returns the pause to apply (ms) when the breaker (re)opens, else 0. */
  failure(nowMs: number = Date.now()): number {
    if (this.state === 'open' && nowMs < this.openUntil) return 0;
    this.failures++;
    if (this.failures < this.threshold) return 0;
    const pause = this.cooldownMs;
    this.state = 'open';
    this.openUntil = nowMs + pause;
    this.cooldownMs = Math.min(this.maxMs, this.cooldownMs * 2);
    this.failures = this.threshold - 1; // the next failure (a failed probe) reopens at once
    return pause;
  }

  success(): void {
    this.failures = 0;
    this.state = 'closed';
    this.cooldownMs = this.baseMs;
  }
}

/**
 * Additive-increase / multiplicative-decrease of the permitted rate on downstream pushback:
 * cut to `decrease` × on a 429 (at most once per `holdMs`), creep back by `increase` of the
 * configured rate per step while no pushback arrives.
 */
export class Aimd {
  factor = 1;
  private lastCut = 0;

  constructor(
    private readonly decrease = 0.7,
    private readonly increase = 0.05,
    private readonly floor = 0.05,
    private readonly holdMs = 1000,
  ) {}

  pushback(nowMs: number): boolean {
    if (nowMs - this.lastCut < this.holdMs) return false;
    this.lastCut = nowMs;
    this.factor = Math.max(this.floor, this.factor * this.decrease);
    return true;
  }

  /** One creep step; returns true when the factor changed. */
  creep(nowMs: number): boolean {
    if (this.factor >= 1 || nowMs - this.lastCut < this.holdMs * 3) return false;
    this.factor = Math.min(1, this.factor + this.increase);
    return true;
  }
}
