/**
 * BullMQ's Worker with a tighter rate-limit wait.
 *
 * When the queue's limiter is full, the worker sleeps until the limiter window expires:
 * `waitForRateLimit` checks `limitUntil > Date.now()` and then sleeps
 * `getRateLimitDelay(limitUntil - Date.now())`.
 * - If the clock ticks to `limitUntil` between the two reads, the delay is 0, and `delay(0)`
 *   sleeps BullMQ's default of 100 ms (`milliseconds || DELAY_TIME_1`) instead of not at all.
 *   With limiter windows of 15–30 ms (the drainer's plans) that happened a few times a minute
 *   and each time cost about 100 ms of deliveries: the one-second dips of 8–16 % the rate bench
 *   showed (BullMQ 6.7.0; found by timing the worker's limiter waits during a dip: every wait
 *   of 100 ms had a delay of 0).
 * - A timer fires up to a millisecond late, and the next window starts only when the worker's
 *   next fetch reaches Redis: every window is followed by a gap the limiter's boost has to make
 *   up (see nextBoost). So the worker wakes 1 ms early. Redis answers a fetch in a limited
 *   window with the window's TTL in whole milliseconds; when 1 ms or less is left, a 1 ms timer
 *   (which fires after 1–2 ms) would waste most of a millisecond per window, about 7 % of a
 *   15 ms window, the headroom pacing needs to repay a slow stretch. The worker then only yields
 *   to the event loop (setImmediate) before fetching again: a few more fetches per window,
 *   each a Redis round trip of about 0.1 ms, instead of a late timer.
 */
import { Worker } from 'bullmq';

/** The rate-limit "delay" that means: yield to the event loop once, then fetch again. */
export const YIELD_DELAY = 0.5;

export class LimitedWorker<DataType = unknown, ResultType = unknown, NameType extends string = string> extends Worker<DataType, ResultType, NameType> {
  /** One millisecond less than BullMQ would wait; with 1 ms or less left, a yield (never 0: BullMQ's delay(0) sleeps 100 ms). */
  protected override getRateLimitDelay(delay: number): number {
    const left = super.getRateLimitDelay(delay);
    return left <= 1 ? YIELD_DELAY : left - 1;
  }

  /** BullMQ's delay, except YIELD_DELAY (only ever passed by the limiter wait above), which yields once. */
  override async delay(milliseconds?: number, abortController?: Parameters<Worker['delay']>[1]): Promise<void> {
    if (milliseconds === YIELD_DELAY) return new Promise<void>((resolve) => setImmediate(resolve));
    return super.delay(milliseconds, abortController);
  }
}
