/**
 * Real-time Scheduler for production wiring: Date.now() and unref'd setTimeout. This is the only
 * coordinator file that touches real timers; the state machine never imports it, it is handed one.
 * The coordinator holds at most one timer per member and two per group, and never creates timers
 * on the heartbeat path (session deadlines are re-checked lazily when their timer fires).
 */
import type { Scheduler } from './scheduler.ts';

export function systemScheduler(): Scheduler {
  return {
    now: () => Date.now(),
    schedule(delayMs, fn) {
      const t = setTimeout(fn, Math.max(0, delayMs));
      t.unref();
      return () => clearTimeout(t);
    },
  };
}
