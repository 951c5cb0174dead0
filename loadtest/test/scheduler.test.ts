/**
 * The arrival schedules of the open-model executors (pure math) and the VU pool / executor loop
 * with slow iterations (timers only, no network).
 */
import { describe, expect, it } from 'vitest';
import { constantArrivalSchedule, rampingArrivalSchedule, runArrivals, VuPool, type ArrivalSchedule } from '../src/scheduler.ts';

function allTimes(s: ArrivalSchedule): number[] {
  const out: number[] = [];
  for (let k = 0; ; k++) {
    const t = s.timeOf(k);
    if (t === null) return out;
    out.push(t);
  }
}

describe('arrival schedules', () => {
  it('constant-arrival-rate: rate per timeUnit, evenly spaced, first at 0', () => {
    const t = allTimes(constantArrivalSchedule(10, 1000, 2000));
    expect(t).toHaveLength(20);
    t.forEach((x, k) => expect(x).toBeCloseTo(k / 10, 9));
    // 30 per minute for 10 s = 5 arrivals, 2 s apart
    expect(allTimes(constantArrivalSchedule(30, 60_000, 10_000))).toEqual([0, 2, 4, 6, 8]);
  });

  it('ramping-arrival-rate: arrivals follow the integral of a linear ramp', () => {
    // 0 → 100/s over 1 s: 50 arrivals; arrival k at sqrt(k / 50) s (N(t) = 50 t²)
    const t = allTimes(rampingArrivalSchedule(0, 1000, [{ duration: '1s', target: 100 }]));
    expect(t).toHaveLength(50);
    t.forEach((x, k) => expect(x).toBeCloseTo(Math.sqrt(k / 50), 6));
  });

  it('ramping-arrival-rate: steady, spike to 10×, hold, decay', () => {
    const s = rampingArrivalSchedule(10, 1000, [
      { duration: '2s', target: 10 },
      { duration: '1s', target: 100 },
      { duration: '2s', target: 100 },
      { duration: '1s', target: 10 },
    ]);
    expect(s.expectedArrivals).toBeCloseTo(20 + 55 + 200 + 55, 6);
    const t = allTimes(s);
    expect(t).toHaveLength(330);
    for (let i = 1; i < t.length; i++) expect(t[i]).toBeGreaterThanOrEqual(t[i - 1]);
    const inWindow = (a: number, b: number) => t.filter((x) => x >= a && x < b).length;
    expect(inWindow(0, 2)).toBe(20);
    expect(inWindow(3, 5)).toBe(200); // the hold at 10× the steady rate
    expect(Math.max(...t)).toBeLessThan(6);
  });

  it('a decaying stage (rate falling to zero) ends with the stage', () => {
    const t = allTimes(rampingArrivalSchedule(100, 1000, [{ duration: '1s', target: 0 }]));
    expect(t).toHaveLength(50);
    expect(t[t.length - 1]).toBeLessThanOrEqual(1);
  });
});

describe('VU pool', () => {
  it('pre-allocates, grows to maxVUs, then refuses', () => {
    let id = 0;
    const pool = new VuPool(2, 3, () => ++id);
    expect(pool.allocated).toBe(2);
    const a = pool.acquire();
    const b = pool.acquire();
    const c = pool.acquire();
    expect([a, b, c].every((v) => v !== null)).toBe(true);
    expect(pool.allocated).toBe(3);
    expect(pool.acquire()).toBeNull();
    pool.release(a!);
    expect(pool.acquire()).toBe(a);
    expect(pool.maxActive).toBe(3);
  });
});

describe('open-model executor', () => {
  const never = { stopped: () => false };

  it('starts iterations on schedule while earlier ones are still running', async () => {
    let id = 0;
    const pool = new VuPool(5, 100, () => ++id);
    const starts: number[] = [];
    let dropped = 0;
    const t0 = performance.now();
    const r = await runArrivals(
      constantArrivalSchedule(40, 1000, 1000),
      pool,
      { startTimeMs: 0, gracefulStopMs: 5000 },
      async () => {
        starts.push(performance.now() - t0);
        await new Promise((res) => setTimeout(res, 600)); // every response is slow
      },
      { ...never, onDropped: () => dropped++ },
    );
    expect(r.started).toBe(40);
    expect(dropped).toBe(0);
    // Arrivals did not wait for answers: while the first iteration ran (600 ms), many more started.
    expect(starts.filter((s) => s < 550).length).toBeGreaterThanOrEqual(15);
    expect(r.maxActiveVus).toBeGreaterThanOrEqual(15);
    expect(r.allocatedVus).toBeGreaterThan(5); // grew past preAllocatedVUs
  });

  it('drops arrivals when maxVUs are all busy (dropped_iterations)', async () => {
    let id = 0;
    const pool = new VuPool(2, 5, () => ++id);
    let dropped = 0;
    const r = await runArrivals(
      constantArrivalSchedule(40, 1000, 500), // 20 arrivals in 0.5 s
      pool,
      { startTimeMs: 0, gracefulStopMs: 5000 },
      () => new Promise((res) => setTimeout(res, 1500)), // each VU is busy past the end
      { ...never, onDropped: () => dropped++ },
    );
    expect(r.started).toBe(5);
    expect(r.dropped).toBe(15);
    expect(dropped).toBe(15);
  });

  it('stops scheduling when the test is aborted', async () => {
    let id = 0;
    let started = 0;
    const pool = new VuPool(10, 10, () => ++id);
    const r = await runArrivals(
      constantArrivalSchedule(100, 1000, 5000),
      pool,
      { startTimeMs: 0, gracefulStopMs: 1000 },
      async () => {
        started++;
      },
      { stopped: () => started >= 10, onDropped: () => undefined },
    );
    expect(r.started).toBeLessThan(20);
  });
});
