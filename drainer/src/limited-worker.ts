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
 *   up (see nextBoost). Waking 1 ms early halves it; a worker that wakes before the window has
 *   expired gets the remaining TTL back from Redis and waits that (at least 1 ms) again.
 */
import { Worker } from 'bullmq';

export class LimitedWorker<DataType = unknown, ResultType = unknown, NameType extends string = string> extends Worker<DataType, ResultType, NameType> {
  /** One millisecond less than BullMQ would wait, and at least 1 ms (a delay of 0 would sleep 100 ms). */
  protected override getRateLimitDelay(delay: number): number {
    return Math.max(1, super.getRateLimitDelay(delay) - 1);
  }
}
