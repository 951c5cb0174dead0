/**
 * The executors of the k6 shim. Arrival-rate executors are open-model: iteration k starts at the
 * moment the schedule says (the time at which the cumulative arrivals of the piecewise-linear
 * rate reach k), whether or not earlier iterations have finished — slow responses do not slow the
 * arrivals. Each arrival takes an idle VU from a bounded pool (preAllocatedVUs, growing up to
 * maxVUs); with none left the arrival is not run and counts as a dropped iteration, as in k6.
 * The closed-model executors (shared-iterations, per-vu-iterations, constant-vus) are here for
 * small control scenarios (e.g. "slow the downstream at t=20s").
 *
 * Pure scheduling: no HTTP, no metrics; the caller passes what an iteration does.
 */
import { parseDuration } from './duration.ts';

/** Arrivals per second rising or falling linearly from `from` to `to` over [startS, startS + durationS). */
export interface RateSegment {
  startS: number;
  durationS: number;
  from: number;
  to: number;
}

export class ArrivalSchedule {
  private seg = 0;
  /** Arrivals before the current segment. */
  private before = 0;

  constructor(readonly segments: readonly RateSegment[]) {}

  get durationS(): number {
    const last = this.segments[this.segments.length - 1];
    return last ? last.startS + last.durationS : 0;
  }

  /** Arrivals the schedule makes in total (the integral of the rate). */
  get expectedArrivals(): number {
    return this.segments.reduce((n, s) => n + ((s.from + s.to) / 2) * s.durationS, 0);
  }

  /**
   * Seconds from the scenario start at which arrival k (0-based) is due, or null when the schedule
   * ends before it. Calls must come with non-decreasing k (the cursor only moves forward).
   */
  timeOf(k: number): number | null {
    while (this.seg < this.segments.length) {
      const s = this.segments[this.seg];
      const inSeg = ((s.from + s.to) / 2) * s.durationS;
      const d = k - this.before;
      if (d < inSeg - 1e-9) {
        // Cumulative arrivals in the segment after τ seconds: from·τ + (to−from)·τ²/(2·D) = d.
        const a = s.durationS > 0 ? (s.to - s.from) / (2 * s.durationS) : 0;
        const b = s.from;
        const disc = b * b + 4 * a * d;
        const tau = d === 0 ? 0 : (2 * d) / (b + Math.sqrt(Math.max(0, disc)));
        return s.startS + Math.min(tau, s.durationS);
      }
      this.before += inSeg;
      this.seg += 1;
    }
    return null;
  }
}

export interface Stage {
  duration: string | number;
  target: number;
}

/** k6 constant-arrival-rate: `rate` iterations per `timeUnit` for `duration`. */
export function constantArrivalSchedule(rate: number, timeUnitMs: number, durationMs: number): ArrivalSchedule {
  const perS = (rate * 1000) / timeUnitMs;
  return new ArrivalSchedule([{ startS: 0, durationS: durationMs / 1000, from: perS, to: perS }]);
}

/** k6 ramping-arrival-rate: from `startRate`, each stage ramps linearly to its target (per `timeUnit`). */
export function rampingArrivalSchedule(startRate: number, timeUnitMs: number, stages: readonly Stage[]): ArrivalSchedule {
  const k = 1000 / timeUnitMs;
  const segments: RateSegment[] = [];
  let t = 0;
  let from = startRate * k;
  for (const [i, st] of stages.entries()) {
    const d = parseDuration(st.duration, `stages[${i}].duration`) / 1000;
    const to = st.target * k;
    if (d > 0) segments.push({ startS: t, durationS: d, from, to });
    t += d;
    from = to;
  }
  return new ArrivalSchedule(segments);
}

export interface Vu {
  id: number;
  /** Iterations this VU has started in this scenario (k6's __ITER). */
  iterations: number;
}

/** The VUs of one scenario: `preAllocated` at start, growing on demand up to `max`. */
export class VuPool {
  private readonly idle: Vu[] = [];
  private allocatedCount = 0;
  private activeCount = 0;
  maxActive = 0;

  constructor(
    preAllocated: number,
    readonly max: number,
    private readonly newId: () => number,
  ) {
    for (let i = 0; i < Math.min(preAllocated, max); i++) this.idle.push(this.allocate());
  }

  private allocate(): Vu {
    this.allocatedCount += 1;
    return { id: this.newId(), iterations: 0 };
  }

  /** An idle VU, a newly allocated one while below max, or null (the arrival is dropped). */
  acquire(): Vu | null {
    const vu = this.idle.pop() ?? (this.allocatedCount < this.max ? this.allocate() : null);
    if (vu) {
      this.activeCount += 1;
      if (this.activeCount > this.maxActive) this.maxActive = this.activeCount;
    }
    return vu;
  }

  release(vu: Vu): void {
    this.activeCount -= 1;
    this.idle.push(vu);
  }

  get active(): number {
    return this.activeCount;
  }

  get allocated(): number {
    return this.allocatedCount;
  }
}

export interface ExecutorResult {
  /** Iterations started. */
  started: number;
  /** Arrivals not run for want of a VU. */
  dropped: number;
  /** Iterations still running when gracefulStop ran out. */
  interrupted: number;
  maxActiveVus: number;
  allocatedVus: number;
}

export type IterationFn = (vu: Vu, iterationInScenario: number) => Promise<void>;

export interface RunControl {
  /** True once the test is aborted: no new iterations start. */
  stopped: () => boolean;
  onDropped: () => void;
}

async function settle(inflight: Set<Promise<void>>, gracefulStopMs: number): Promise<number> {
  if (inflight.size === 0) return 0;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), gracefulStopMs)));
  const all = Promise.all(inflight).then(() => 'done' as const);
  const outcome = await Promise.race([all, timeout]);
  clearTimeout(timer);
  return outcome === 'timeout' ? inflight.size : 0;
}

const sleepMs = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs an arrival-rate executor: open model, see the module header. */
export async function runArrivals(schedule: ArrivalSchedule, pool: VuPool, opts: { startTimeMs: number; gracefulStopMs: number }, iterate: IterationFn, control: RunControl): Promise<ExecutorResult> {
  if (opts.startTimeMs > 0) await sleepMs(opts.startTimeMs);
  const t0 = performance.now();
  const inflight = new Set<Promise<void>>();
  let started = 0;
  let dropped = 0;
  let k = 0;
  let next = schedule.timeOf(0);
  await new Promise<void>((done) => {
    const tick = () => {
      if (control.stopped()) next = null;
      const now = (performance.now() - t0) / 1000;
      while (next !== null && next <= now) {
        const vu = pool.acquire();
        if (vu === null) {
          dropped += 1;
          control.onDropped();
        } else {
          started += 1;
          const p = iterate(vu, k).finally(() => {
            pool.release(vu);
            inflight.delete(p);
          });
          inflight.add(p);
        }
        k += 1;
        next = schedule.timeOf(k);
      }
      if (next === null) {
        done();
        return;
      }
      setTimeout(tick, Math.max(0, (next - (performance.now() - t0) / 1000) * 1000));
    };
    tick();
  });
  const interrupted = await settle(inflight, opts.gracefulStopMs);
  return { started, dropped, interrupted, maxActiveVus: pool.maxActive, allocatedVus: pool.allocated };
}

/** Closed-model executors: each VU runs iterations back to back. */
export async function runLoops(
  kind: 'shared-iterations' | 'per-vu-iterations' | 'constant-vus',
  pool: VuPool,
  opts: { vus: number; iterations: number; durationMs: number; startTimeMs: number; gracefulStopMs: number },
  iterate: IterationFn,
  control: RunControl,
): Promise<ExecutorResult> {
  if (opts.startTimeMs > 0) await sleepMs(opts.startTimeMs);
  const deadline = performance.now() + opts.durationMs;
  let shared = 0;
  let started = 0;
  const inflight = new Set<Promise<void>>();
  const loop = async (vu: Vu) => {
    let own = 0;
    for (;;) {
      if (control.stopped() || performance.now() >= deadline) return;
      let k: number;
      if (kind === 'shared-iterations') {
        if (shared >= opts.iterations) return;
        k = shared++;
      } else if (kind === 'per-vu-iterations') {
        if (own >= opts.iterations) return;
        k = started;
        own += 1;
      } else k = started;
      started += 1;
      await iterate(vu, k);
    }
  };
  for (let i = 0; i < opts.vus; i++) {
    const vu = pool.acquire();
    if (vu === null) break;
    const p = loop(vu).finally(() => {
      pool.release(vu);
      inflight.delete(p);
    });
    inflight.add(p);
  }
  // Loops end by themselves before the deadline; past it, gracefulStop bounds the wait.
  let timer: NodeJS.Timeout | undefined;
  const untilDeadline = new Promise<'deadline'>((r) => (timer = setTimeout(() => r('deadline'), Math.max(0, deadline - performance.now()))));
  const first = await Promise.race([Promise.all(inflight).then(() => 'done' as const), untilDeadline]);
  clearTimeout(timer);
  const interrupted = first === 'done' ? 0 : await settle(inflight, opts.gracefulStopMs);
  return { started, dropped: 0, interrupted, maxActiveVus: pool.maxActive, allocatedVus: pool.allocated };
}
