/**
 * The coordinator's only window on time: a clock and one-shot timers, injected so the group state
 * machine stays pure and can be driven deterministically.
 *
 * ManualScheduler is the deterministic implementation (tests, simulations): time moves only when
 * advance()/advanceTo() is called, and due timers fire in (due time, scheduling order) with now()
 * equal to each timer's due time while it runs, so a timer scheduled from inside a timer fires in
 * the same advance() if it falls due within it. It must not depend on real time or I/O.
 * The real-time implementation lives in system-scheduler.ts.
 */

/** Cancels a scheduled timer; calling it after the timer fired (or twice) is a no-op. */
export type CancelTimer = () => void;

export interface Scheduler {
  /** Milliseconds on the scheduler's clock (epoch ms for the system scheduler). */
  now(): number;
  /** Runs `fn` once, `delayMs` (>= 0) after now(). */
  schedule(delayMs: number, fn: () => void): CancelTimer;
}

interface ManualTimer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

export class ManualScheduler implements Scheduler {
  private time: number;
  private seq = 0;
  private timers: ManualTimer[] = [];

  constructor(startMs = 0) {
    this.time = startMs;
  }

  now(): number {
    return this.time;
  }

  schedule(delayMs: number, fn: () => void): CancelTimer {
    const timer: ManualTimer = { at: this.time + Math.max(0, delayMs), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  }

  /** Moves the clock forward by `ms`, firing every timer that falls due on the way. */
  advance(ms: number): void {
    this.advanceTo(this.time + ms);
  }

  advanceTo(targetMs: number): void {
    if (targetMs < this.time) throw new RangeError(`cannot move the clock back from ${this.time} to ${targetMs}`);
    for (;;) {
      const next = this.nextDue(targetMs);
      if (next === undefined) break;
      this.timers.splice(this.timers.indexOf(next), 1);
      this.time = next.at;
      next.fn();
    }
    this.time = targetMs;
  }

  /** Live (not cancelled, not fired) timers. */
  get pendingTimers(): number {
    this.timers = this.timers.filter((t) => !t.cancelled);
    return this.timers.length;
  }

  private nextDue(limit: number): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const t of this.timers) {
      if (t.cancelled || t.at > limit) continue;
      if (best === undefined || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }
}
