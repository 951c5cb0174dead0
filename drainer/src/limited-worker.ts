/**
 * BullMQ's Worker with one fix to its rate-limit wait.
 *
 * When the queue's limiter is full, the worker sleeps until the limiter window expires:
 * `waitForRateLimit` checks `limitUntil > Date.now()` and then sleeps
 * `getRateLimitDelay(limitUntil - Date.now())`. If the clock ticks to `limitUntil` between the
 * two reads, the delay is 0, and `delay(0)` sleeps BullMQ's default of 100 ms
 * (`milliseconds || DELAY_TIME_1`) instead of not at all. With limiter windows of 20–30 ms (the
 * drainer's plans, see limiterPlan) that happens a few times a minute and each time costs about
 * 100 ms of deliveries: the one-second dips of 8–16 % the rate bench showed (BullMQ 6.7.0;
 * found by timing the worker's limiter waits during a dip: every wait of 100 ms had delay 0).
 */
import { Worker } from 'bullmq';

export class LimitedWorker<DataType = unknown, ResultType = unknown, NameType extends string = string> extends Worker<DataType, ResultType, NameType> {
  /** At least 1 ms: a delay of 0 would sleep 100 ms (see above). */
  protected override getRateLimitDelay(delay: number): number {
    return Math.max(1, super.getRateLimitDelay(delay));
  }
}
