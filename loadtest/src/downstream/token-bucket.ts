/**
 * Token bucket for the simulator's capacity: `burst` tokens, refilled at `rate` per second; one
 * request takes one token. Pure (the caller passes the time), so it is tested without a clock.
 *
 * Invariant: over any interval of length T seconds at most `burst + rate * T` takes succeed, so
 * any 1-second wall-clock bucket holds at most `rate + burst` admissions. rate 0 = unlimited.
 */
export type TakeResult = { ok: true } | { ok: false; retryAfterMs: number };

const OK: TakeResult = { ok: true };

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    nowMs: number,
  ) {
    if (!(rate >= 0) || !Number.isFinite(rate)) throw new RangeError(`rate must be a finite number >= 0, got ${rate}`);
    if (!Number.isInteger(burst) || burst < 1) throw new RangeError(`burst must be an integer >= 1, got ${burst}`);
    this.tokens = burst;
    this.last = nowMs;
  }

  get unlimited(): boolean {
    return this.rate === 0;
  }

  /** Takes one token at time `nowMs` (ms, monotonic), or says how long until one is available. */
  tryTake(nowMs: number): TakeResult {
    if (this.rate === 0) return OK;
    // A clock that steps back never mints tokens.
    if (nowMs > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.last) * this.rate) / 1000);
      this.last = nowMs;
    }
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return OK;
    }
    return { ok: false, retryAfterMs: ((1 - this.tokens) / this.rate) * 1000 };
  }
}

/** HTTP `Retry-After` in whole seconds, at least 1 (RFC 9110 delay-seconds). */
export function retryAfterSeconds(retryAfterMs: number): number {
  return Math.max(1, Math.ceil(retryAfterMs / 1000));
}
