import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualScheduler } from '../../src/coordinator/scheduler.ts';
import { systemScheduler } from '../../src/coordinator/system-scheduler.ts';

describe('ManualScheduler', () => {
  it('fires due timers in due-time then scheduling order, with now() at each due time', () => {
    const s = new ManualScheduler(100);
    const seen: string[] = [];
    s.schedule(30, () => seen.push(`b@${s.now()}`));
    s.schedule(10, () => seen.push(`a@${s.now()}`));
    s.schedule(30, () => seen.push(`c@${s.now()}`));
    s.schedule(50, () => seen.push(`late@${s.now()}`));
    s.advance(30);
    expect(seen).toEqual(['a@110', 'b@130', 'c@130']);
    expect(s.now()).toBe(130);
    expect(s.pendingTimers).toBe(1);
  });

  it('fires timers scheduled from a timer within the same advance, and skips cancelled ones', () => {
    const s = new ManualScheduler();
    const seen: number[] = [];
    const cancel = s.schedule(5, () => seen.push(-1));
    s.schedule(10, () => s.schedule(10, () => seen.push(s.now())));
    cancel();
    cancel();
    s.advance(25);
    expect(seen).toEqual([20]);
    expect(s.now()).toBe(25);
    expect(s.pendingTimers).toBe(0);
  });

  it('does not fire a timer before it is due and refuses to go back in time', () => {
    const s = new ManualScheduler(0);
    let fired = false;
    s.schedule(10, () => (fired = true));
    s.advance(9);
    expect(fired).toBe(false);
    s.advance(1);
    expect(fired).toBe(true);
    expect(() => s.advanceTo(5)).toThrow(RangeError);
  });
});

describe('systemScheduler', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('maps onto setTimeout/clearTimeout and Date.now', () => {
    vi.useFakeTimers({ now: 5_000 });
    const s = systemScheduler();
    expect(s.now()).toBe(5_000);
    const fired: string[] = [];
    s.schedule(100, () => fired.push('kept'));
    const cancel = s.schedule(50, () => fired.push('cancelled'));
    cancel();
    vi.advanceTimersByTime(100);
    expect(fired).toEqual(['kept']);
    expect(s.now()).toBe(5_100);
  });
});
