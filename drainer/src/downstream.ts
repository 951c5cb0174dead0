/**
 * One downstream: its BullMQ queue (the window), the pump that fills it, the rate-limited
 * workers that deliver, and a controller that applies the schedule, manual pause/resume/rate
 * (persisted in Redis), and AIMD on pushback to the queue's global (fleet-wide) rate limit.
 * It publishes lag and the drain ETA to Redis (for the gateway's admission) and Prometheus.
 */
import { DelayedError, Queue, RateLimitError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../lib/src/logger.ts';
import { keys } from '../../lib/src/redis-keys.ts';
import { DELIVERED_HERE, DeliveryWrites, type Delivered } from './batch.ts';
import { CircuitBreaker } from './breaker.ts';
import { LimitedWorker } from './limited-worker.ts';
import { burstOf, type DownstreamConfig } from './config.ts';
import { DeliveryLanes, type DeliveryClient } from './delivery.ts';
import type { LogClient } from './log-client.ts';
import type { DrainerMetrics } from './metrics.ts';
import { Pump, RedisPumpStore, batchSizeFor, doneKey, doneRuns, jobIdFor, type DeliveryJob, type DeliveryOrder } from './pump.ts';
import { secondsUntilOpen, windowState } from './schedule.ts';

/** A job's deliveries failed (5xx, timeouts): BullMQ retries it with backoff, using an attempt. */
class DeliveryFailed extends Error {}

const controlKeys = {
  control: keys.downstreamControl,
  aimd: keys.downstreamAimd,
  aimdCut: keys.downstreamAimdCut,
  aimdCreep: keys.downstreamAimdCreep,
  dlqIndex: keys.dlqIndex,
  dlqItems: keys.dlqItems,
  redrive: keys.redrive,
  /** Hash: boost (limiter rate / configured rate), rate (the effective rate it was measured for), at (ms, last change). */
  boost: (name: string) => `spw:downstream:${name}:rate-boost`,
  boostLock: (name: string) => `spw:downstream:${name}:rate-boost-lock`,
  /** Deliveries completed in one wall-clock second, fleet-wide. */
  delivered: (name: string, second: number) => `spw:downstream:${name}:delivered:${second}`,
  /** Orders of the jobs started in one wall-clock second, fleet-wide (see secondQuota). */
  started: (name: string, second: number) => `spw:downstream:${name}:started:${second}`,
};

const STALLED_CHECK_MS = 5_000;
/** How long a job whose dead letters could not be written waits before it runs again. */
const DEFER_MS = 5_000;

/** The moving average of a job's arrival time (see Downstream.arrivalMs): weight of each job, and the most one job adds. */
const ARRIVAL_WEIGHT = 0.05;
const ARRIVAL_MAX_MS = 250;

/** Whole seconds of deliveries the rate controller averages before it adjusts the boost. */
const BOOST_MEASURE_S = 3;

const DLQ_INDEX_CAP = 100_000;
/** Most orders pending in BullMQ per downstream, whatever the rate. */
const MAX_WINDOW = 10_000;
/** Order status hashes written here expire like the gateway's (7 days). */
const ORDER_TTL_S = 7 * 86_400;

export interface DownstreamDeps {
  config: DownstreamConfig;
  dlqTopic: string;
  redis: Redis;
  /** A connection for BullMQ (maxRetriesPerRequest: null). */
  bullConnection: Redis;
  logClient: LogClient;
  delivery: DeliveryClient;
  metrics: DrainerMetrics;
  log: Logger;
  now?: () => number;
}

export interface RateState {
  /** Deliveries/s permitted right now (0 = paused). */
  effectiveRate: number;
  scheduleRate: number;
  window: string;
  paused: boolean;
  manualPause: boolean;
  override: number | null;
  aimdFactor: number;
}

export class Downstream {
  readonly queue: Queue;
  private worker: Worker | null = null;
  private workerConnection: Redis | null = null;
  private pump: Pump | null = null;
  private timers: NodeJS.Timeout[] = [];
  private readonly breaker = new CircuitBreaker();
  private applied = '';
  private stopping = false;
  /** What pacing steers (null while paused), and the limiter this process last wrote. */
  private pacing: Pacing | null = null;
  private written: Limiter | null = null;
  state: RateState;
  private readonly name: string;
  private readonly now: () => number;
  private readonly writes: DeliveryWrites;
  /** The job ranges and done marks of the downstream's topic (shared by the pump and the workers). */
  private readonly store: RedisPumpStore;
  /**
   * How long after its start a job's orders reach the downstream, on average (ms; a moving
   * average over jobs): a job's start counts against the second its orders arrive in (see
   * DeliveryWrites.start).
   */
  private arrivalMs = 0;
  /** Orders per job (and per limiter slot) for the rate in force; see batchSizeFor. */
  private batch = 1;
  /** Jobs per limiter window for the rate in force; see windowCap. */
  private windowJobs = 1;
  /** Sends the orders of every running job, at most config.concurrency at a time in this process. */
  private readonly lanes: DeliveryLanes;

  constructor(private readonly d: DownstreamDeps) {
    this.name = d.config.name;
    this.now = d.now ?? Date.now;
    const latency = d.metrics.latency.labels({ downstream: this.name });
    this.lanes = new DeliveryLanes(d.delivery, d.config.concurrency, (ms) => latency.observe(ms / 1000));
    this.queue = new Queue(`deliver-${this.name}`, { connection: d.bullConnection, prefix: 'spw:bull' });
    this.writes = new DeliveryWrites(d.redis, `deliveredAt:${this.name}`, ORDER_TTL_S, (sec) => controlKeys.delivered(this.name, sec), {
      limiterKey: this.queue.keys.limiter,
      startedKey: (sec) => controlKeys.started(this.name, sec),
      orders: () => (this.pacing === null ? 0 : secondQuota(this.pacing)),
    });
    this.store = new RedisPumpStore(d.redis, this.name, d.config.topic, (id) => this.queue.toKey(id));
    const ws = windowState(d.config, this.now());
    this.state = { effectiveRate: ws.rate, scheduleRate: ws.rate, window: ws.window, paused: ws.paused, manualPause: false, override: null, aimdFactor: 1 };
    this.setSizing(ws.rate > 0 ? ws.rate : d.config.rate);
  }

  private get groupId(): string {
    return this.d.config.group ?? `spillway-drainer-${this.name}`;
  }

  async start(): Promise<void> {
    const c = this.d.config;
    // The first Redis round trip: a drainer started while Redis is down (or restarting) waits for
    // it, rather than exiting for a supervisor to restart it.
    if (!(await this.retryUntilStopped('applying the delivery rate', () => this.control()))) return;
    // Its own connection: the worker's fetches and completions do not queue behind the pump's job inserts.
    this.workerConnection = this.d.bullConnection.duplicate();
    this.workerConnection.on('error', (err: Error) => this.d.log.warn({ err: err.message, downstream: this.name }, 'redis error (worker)'));
    this.worker = new LimitedWorker(`deliver-${this.name}`, (job: Job<DeliveryJob>, token?: string) => this.process(job, token), {
      connection: this.workerConnection,
      prefix: 'spw:bull',
      concurrency: this.jobConcurrency(),
      maxStalledCount: 1000,
      // A crashed drainer's active jobs go back to the window once their lock (BullMQ's default
      // 30 s, renewed every 15 s by live workers) has expired and the next check (every 5 s,
      // was 30 s) runs: within about 35 s instead of up to a minute. The lock stays long: a
      // lock lost by a live but starved process means a second delivery.
      stalledInterval: STALLED_CHECK_MS,
    });
    this.worker.on('error', (err) => this.d.log.warn({ err: err.message, downstream: this.name }, 'worker error'));
    this.pump = new Pump({
      name: this.name,
      topic: c.topic,
      queue: this.queue,
      redis: this.d.redis,
      consumer: this.d.logClient.consumer(this.groupId, c.topic),
      store: this.store,
      // A few seconds of the permitted rate, bounded: the backlog stays in the log, not in Redis.
      windowSize: () => Math.min(MAX_WINDOW, Math.max(burstOf(c, c.rate), 10, Math.ceil(Math.max(this.state.effectiveRate, c.rate * 0.05) * c.windowSeconds))),
      batchSize: () => this.batch,
      // A finished job is removed at once: its orders' done marks (and the ranges set) are what
      // keeps a re-pump from adding them again.
      jobOptions: this.jobOptions(),
      log: this.d.log,
    });
    const every = (ms: number, fn: () => Promise<void>) => {
      const t = setInterval(() => {
        fn().catch((err: unknown) => this.d.log.warn({ err: (err as Error).message, downstream: this.name }, 'controller step failed'));
      }, ms);
      this.timers.push(t);
    };
    every(1000, () => this.control());
    every(2000, async () => {
      await this.publishBacklog();
    });
    every(500, () => this.redrive());
    every(PACE_SLOT_MS, () => this.pace());
    await this.pump.start();
    this.d.log.info({ downstream: this.name, url: c.url, topic: c.topic, group: this.groupId, rate: c.rate }, 'draining');
  }

  /** Applies schedule, manual control and AIMD to the queue's global rate limit (or pause). */
  async control(): Promise<void> {
    const c = this.d.config;
    const now = this.now();
    const ws = windowState(c, now);
    const [ctl, factorRaw, cut, meta, boostState] = await Promise.all([
      this.d.redis.hgetall(controlKeys.control(this.name)),
      this.d.redis.get(controlKeys.aimd(this.name)),
      this.d.redis.exists(controlKeys.aimdCut(this.name)),
      this.queue.getMeta(),
      this.d.redis.hgetall(controlKeys.boost(this.name)),
    ]);
    let factor = factorRaw === null ? 1 : Math.min(1, Math.max(0.05, Number(factorRaw)));
    // Additive increase: one process per second creeps the shared factor back up while no pushback arrives.
    if (factor < 1 && cut === 0 && (await this.d.redis.set(controlKeys.aimdCreep(this.name), '1', 'PX', 950, 'NX')) === 'OK') {
      factor = Math.min(1, factor + 0.05);
      await this.d.redis.set(controlKeys.aimd(this.name), String(factor));
    }
    const manualPause = ctl.paused === '1';
    const override = ctl.rate !== undefined && ctl.rate !== '' ? Number(ctl.rate) : null;
    const base = override ?? ws.rate;
    const paused = manualPause || ws.paused || base <= 0;
    const effectiveRate = paused ? 0 : base * factor;
    this.state = { effectiveRate, scheduleRate: ws.rate, window: ws.window, paused, manualPause, override, aimdFactor: factor };
    const m = this.d.metrics;
    m.rateLimit.set({ downstream: this.name }, effectiveRate);
    m.windowState.set({ downstream: this.name }, paused ? 0 : 1);
    m.aimdFactor.set({ downstream: this.name }, factor);
    const burst = burstOf(c, effectiveRate);
    // Paused: jobs are sized for the rate deliveries resume at.
    const resumeRate = paused ? (override ?? (ws.rate > 0 ? ws.rate : c.rate)) : effectiveRate;
    this.setSizing(resumeRate);
    const b = this.batch;
    const boost = paused ? 1 : await this.adjustBoost(effectiveRate, burst, b, boostState, now);
    const key = paused ? 'paused' : `${effectiveRate.toFixed(3)}x${boost.toFixed(4)}x${b}`;
    // BullMQ's limiter counts jobs: pacing plans in jobs of b orders (a worker splits bigger ones).
    const pacing = paused ? null : { rate: effectiveRate, burst, batch: b, boost };
    this.pacing = pacing;
    // The queue's own state in Redis must match too: after Redis loses data it holds no limit
    // (BullMQ would then deliver unlimited) and no pause, whatever was applied before. (Pacing
    // writes a different limiter every few slots: any limit counts as in sync.)
    const limited = typeof meta.max === 'number' && meta.max > 0 && typeof meta.duration === 'number' && meta.duration > 0;
    const inSync = paused ? meta.paused === true : meta.paused !== true && limited;
    if (key === this.applied && inSync) return;
    let limiter: Limiter | null = null;
    if (pacing === null) {
      await this.queue.pause();
    } else {
      // The limiter of a second on track; the pacer steers it from its next slot on.
      limiter = paceLimiter(pacing, 0, 0);
      await this.queue.setGlobalRateLimit(limiter.max, limiter.duration);
      this.written = limiter;
      if (meta.paused === true) await this.queue.resume();
    }
    const onlyBoost = !paused && this.applied.split('x')[0] === key.split('x')[0] && key !== this.applied;
    const fields = { downstream: this.name, paused, effectiveRate, window: ws.window, manualPause, override, aimdFactor: factor, boost, limiter, ...(key === this.applied ? { reapplied: true } : {}) };
    if (onlyBoost) this.d.log.debug(fields, 'limiter boost adjusted');
    else this.d.log.info(fields, key === this.applied ? 'delivery rate re-applied (queue state in Redis differed)' : 'delivery rate applied');
    this.applied = key;
  }

  /**
   * Second-aligned pacing (every PACE_SLOT_MS, in every process): reads the deliveries counted so
   * far in this wall-clock second and writes the limiter that reaches the rate PACE_RESERVE_MS
   * before the second ends (see paceLimiter; secondQuota closes the limiter for the rest). A
   * second that lost time (a slow Redis call, a late timer, a window that ran dry) catches up
   * within itself, up to the burst; one that ran ahead slows down.
   */
  private async pace(): Promise<void> {
    const p = this.pacing;
    if (p === null) return;
    const sec = Math.floor(Date.now() / 1000);
    const count = Number((await this.d.redis.get(controlKeys.delivered(this.name, sec))) ?? 0);
    if (this.pacing !== p) return; // the rate changed meanwhile: the next slot paces for it
    const l = paceLimiter(p, count, Date.now() - sec * 1000);
    if (this.written !== null && this.written.max === l.max && this.written.duration === l.duration) return;
    this.written = l;
    this.d.log.debug({ downstream: this.name, second: sec, count, max: l.max, duration: l.duration }, 'pacing: limiter');
    await this.queue.setGlobalRateLimit(l.max, l.duration);
  }

  /**
   * The fleet-wide boost of the limiter (see nextBoost): one process a second measures the
   * deliveries of the last whole seconds since the last change and, when the limiter was the
   * bottleneck (jobs were waiting), sets the boost that makes them match the rate.
   */
  private async adjustBoost(rate: number, burst: number, batch: number, st: Record<string, string>, now: number): Promise<number> {
    const r = this.d.redis;
    const current = Number(st.boost);
    const boost = Number.isFinite(current) && current > 0 ? current : 1;
    if ((await r.set(controlKeys.boostLock(this.name), '1', 'PX', 950, 'NX')) !== 'OK') return boost;
    const rateKey = `${rate.toFixed(3)}/${batch}`;
    const at = Number(st.at);
    if (st.rate !== rateKey || !Number.isFinite(at)) {
      // A new rate (or none measured yet): measure from now on with the boost as it is.
      await r.hset(controlKeys.boost(this.name), 'boost', String(boost), 'rate', rateKey, 'at', String(now));
      return boost;
    }
    const sec = Math.floor(now / 1000);
    const from = sec - BOOST_MEASURE_S;
    if (from * 1000 < at) return boost; // not enough whole seconds since the last change
    const [counts, waiting] = await Promise.all([
      r.mget(Array.from({ length: BOOST_MEASURE_S }, (_, i) => controlKeys.delivered(this.name, from + i))),
      this.queue.getJobCounts('wait'),
    ]);
    if ((waiting.wait ?? 0) === 0) return boost; // the window ran dry: the limiter was not the bottleneck
    const achieved = counts.reduce((n, v) => n + Number(v ?? 0), 0) / BOOST_MEASURE_S;
    // In jobs of `batch` orders, as the limiter counts.
    const next = nextBoost(rate / batch, burst / batch, (rate / batch) * boost, achieved / batch);
    if (next === null || Math.abs(next / boost - 1) < 0.003) return boost;
    await r.hset(controlKeys.boost(this.name), 'boost', String(next), 'rate', rateKey, 'at', String(now));
    return next;
  }

  /** BullMQ job options of the window's jobs (and re-drives). */
  private jobOptions(): Parameters<Queue['add']>[2] {
    const r = this.d.config.retry;
    return {
      attempts: r.attempts,
      backoff: { type: 'exponential', delay: r.backoffMs, jitter: r.jitter },
      removeOnComplete: true,
      removeOnFail: { age: 24 * 3600 },
    };
  }

  /**
   * Jobs a worker runs at once: enough for `concurrency` deliveries in flight twice over, and at
   * least the jobs of two limiter windows. A window's jobs can still be running (their orders
   * waiting for a delivery slot) when the next window opens; a worker without a free job slot
   * then starts that window late, and the gap is lost to the rate. (With 4 × concurrency orders,
   * 11 jobs at 5,000/s, about one window of 9: seconds fell 4–6 % short now and then.)
   */
  private jobConcurrency(): number {
    const c = this.d.config.concurrency;
    return Math.max(1, Math.min(c, Math.max(Math.ceil((8 * c) / this.batch), 2 * this.windowJobs)));
  }

  /** Orders per job and jobs per limiter window at `rate` (the rate in force, or the one deliveries resume at) with the burst in force there. */
  private setSizing(rate: number): void {
    const burst = burstOf(this.d.config, rate);
    const b = batchSizeFor(rate, burst);
    const windowJobs = windowCap(rate / b, burst / b);
    if (b === this.batch && windowJobs === this.windowJobs) return;
    this.batch = b;
    this.windowJobs = windowJobs;
    if (this.worker) this.worker.concurrency = this.jobConcurrency();
  }

  private observeArrival(ms: number): void {
    // A job held up far longer (a stall, a slow downstream) says little about the next one.
    const sample = Math.min(ms, ARRIVAL_MAX_MS);
    this.arrivalMs = this.arrivalMs === 0 ? sample : this.arrivalMs + ARRIVAL_WEIGHT * (sample - this.arrivalMs);
  }

  /**
   * A job bigger than the batch size in force (the rate dropped since it was pumped) keeps its
   * first `size` orders; the rest becomes a new job (recorded in the ranges set first, so a
   * re-pump sees it), to be delivered in a later limiter slot.
   */
  private async split(job: Job<DeliveryJob>, size: number): Promise<DeliveryOrder[]> {
    const j = job.data;
    const keep = j.orders.slice(0, size);
    const rest = j.orders.slice(size);
    if (j.redrive !== true) await this.store.recordRanges(j.partition, [{ first: rest[0].offset, last: rest[rest.length - 1].offset }]);
    const id = j.redrive === true ? `${job.id ?? 'redrive'}:${rest[0].offset}` : jobIdFor(j.topic, j.partition, rest[0].offset);
    await this.queue.add('deliver', { ...j, orders: rest }, { ...this.jobOptions(), jobId: id });
    await job.updateData({ ...j, orders: keep });
    return keep;
  }

  /**
   * The worker's processor: delivers the job's orders (concurrently, within the process's
   * delivery slots) and records each outcome. Orders left to retry stay in the job (its data is
   * cut to them) and the job is thrown back: to the limiter on pushback, to BullMQ's backoff on
   * failures; the job's attempts count for all its orders.
   */
  private async process(job: Job<DeliveryJob>, token?: string): Promise<string> {
    try {
      return await this.deliverJob(job, token);
    } catch (err) {
      // Failures (retried with backoff, using an attempt) and BullMQ's own signals pass through.
      if (err instanceof DeliveryFailed || err instanceof DelayedError || err instanceof RateLimitError) throw err;
      // Anything else (Redis refused a call, a bug) is not the downstream's doing: the job is
      // put back without using an attempt, so it never ends as a failed job holding its orders
      // (a failed job keeps its offsets from being committed until BullMQ removes it a day later).
      this.d.log.warn({ downstream: this.name, jobId: job.id, err: (err as Error).message }, 'job could not be processed; it is kept for a later try');
      try {
        return await this.defer(job, token, job.data.orders, 'processing_error');
      } catch (deferErr) {
        if (deferErr instanceof DelayedError) throw deferErr;
        // Could not even put it back (Redis down): once its lock expires, BullMQ's stalled-job
        // check returns it to the window.
        throw err;
      }
    }
  }

  /** One try at a job's orders (see process). */
  private async deliverJob(job: Job<DeliveryJob>, token?: string): Promise<string> {
    const j = job.data;
    const m = this.d.metrics;
    const labels = { downstream: this.name };
    let orders = j.orders;
    if (orders.length > this.batch) orders = await this.split(job, this.batch);
    // A second that has its quota of starts: back to the window (no attempt used) until it
    // ends. The statuses come in the same round trip, so the orders go out right after the job
    // counted against its second. Arrivals are timed from before that call, as the second a job
    // counts against is (see DeliveryWrites.start).
    const startedAt = performance.now();
    const statuses = await this.writes.start(orders.map((o) => keys.order(o.orderId)), this.arrivalMs);
    if (statuses === null) throw Worker.RateLimitError();
    const todo: DeliveryOrder[] = [];
    const skipped: DeliveryOrder[] = [];
    orders.forEach((o, i) => {
      // An order the gateway answered 503 for (its append outcome was unknown) is never delivered;
      // one this downstream already has (a second job for it after a crash) is not sent twice.
      if (statuses[i] === 'rejected' || statuses[i] === DELIVERED_HERE) {
        skipped.push(o);
        m.deliveries.inc({ ...labels, outcome: statuses[i] === 'rejected' ? 'skipped_rejected' : 'skipped_duplicate' });
      } else todo.push(o);
    });
    if (skipped.length > 0) await this.finish(j, skipped);
    const sends = await this.lanes.send(todo, startedAt);
    const outcomes = sends.outcomes;
    if (todo.length > 0) this.observeArrival(sends.arrivals / todo.length);
    const attempts = job.attemptsMade + 1;
    const done = doneKey(this.name, j.topic, j.partition);
    const again: DeliveryOrder[] = [];
    let delivered = 0;
    let pushbacks = 0;
    let pushbackMs = -1;
    let failure = '';
    const recorded: Promise<unknown>[] = [];
    const deliveredWrites: Delivered[] = [];
    // Orders whose dead letter could not be written (the broker or Redis is down): the job is
    // put back without using an attempt, so they are neither lost in a failed job nor retried forever.
    const deferred: DeliveryOrder[] = [];
    const deadLetter = async (o: DeliveryOrder, reason: string) => {
      try {
        await this.deadLetter(j, o, reason, attempts);
      } catch (err) {
        this.d.log.warn({ downstream: this.name, orderId: o.orderId, err: (err as Error).message }, 'dead letter failed; the order is kept for a later try');
        deferred.push(o);
      }
    };
    for (let i = 0; i < todo.length; i++) {
      const o = todo[i];
      const outcome = outcomes[i];
      switch (outcome.kind) {
        case 'delivered':
          this.breaker.success();
          delivered++;
          deliveredWrites.push({ orderKey: keys.order(o.orderId), doneKey: done, attempts, offset: j.redrive === true ? null : o.offset });
          break;
        case 'pushback':
          pushbacks++;
          pushbackMs = Math.max(pushbackMs, outcome.retryAfterMs);
          again.push(o);
          break;
        case 'retry':
          failure = outcome.reason;
          again.push(o);
          break;
        case 'dead':
          this.breaker.success(); // the downstream answered: it is up
          recorded.push(deadLetter(o, outcome.reason));
          break;
      }
    }
    if (delivered > 0) m.deliveries.inc({ ...labels, outcome: 'delivered' }, delivered);
    recorded.push(this.writes.delivered.addAll(deliveredWrites));
    await Promise.all(recorded);
    if (j.redrive === true && delivered > 0) {
      await this.d.redis.multi().zrem(controlKeys.dlqIndex(this.name), j.orders[0].orderId).hdel(controlKeys.dlqItems(this.name), j.orders[0].orderId).exec();
    }
    if (again.length === 0 && deferred.length === 0) return `delivered ${delivered} of ${orders.length}`;
    if (deferred.length > 0) return this.defer(job, token, [...again, ...deferred], 'dead_letter_failed');

    if (pushbackMs >= 0) {
      m.deliveries.inc({ ...labels, outcome: 'pushback' }, pushbacks);
      // Multiplicative decrease, at most once a second fleet-wide.
      if ((await this.d.redis.set(controlKeys.aimdCut(this.name), '1', 'PX', 1000, 'NX')) === 'OK') {
        const f = Number((await this.d.redis.get(controlKeys.aimd(this.name))) ?? 1);
        await this.d.redis.set(controlKeys.aimd(this.name), String(Math.max(0.05, f * 0.7)));
        this.applied = ''; // re-apply at the next control step
      }
      await job.updateData({ ...j, orders: again });
      await this.queue.rateLimit(Math.min(60_000, Math.max(50, pushbackMs)));
      throw Worker.RateLimitError();
    }
    const failed = again.length;
    m.deliveries.inc({ ...labels, outcome: 'failed' }, failed);
    let pause = 0;
    for (let i = 0; i < failed; i++) pause = Math.max(pause, this.breaker.failure());
    m.breakerOpen.set(labels, this.breaker.state === 'open' ? 1 : 0);
    if (pause > 0) {
      this.d.log.warn({ downstream: this.name, pauseMs: pause, reason: failure }, 'circuit open: pausing deliveries');
      await this.queue.rateLimit(pause);
    }
    if (attempts >= (job.opts.attempts ?? 1)) {
      for (const o of again) await deadLetter(o, `retries exhausted: ${failure}`);
      if (deferred.length > 0) return this.defer(job, token, deferred, 'dead_letter_failed');
      return `delivered ${delivered}, dead-lettered ${failed} of ${orders.length}`;
    }
    m.retries.inc(labels, failed);
    await job.updateData({ ...j, orders: again });
    throw new DeliveryFailed(failure);
  }

  /** Puts the job back, cut to `orders`, for DEFER_MS, without counting an attempt (counted in the deferred metric). */
  private async defer(job: Job<DeliveryJob>, token: string | undefined, orders: DeliveryOrder[], reason: 'dead_letter_failed' | 'processing_error'): Promise<never> {
    this.d.metrics.deferred.inc({ downstream: this.name, reason });
    await job.updateData({ ...job.data, orders: [...orders].sort((a, b) => a.offset - b.offset) });
    await job.moveToDelayed(Date.now() + DEFER_MS, token);
    throw new DelayedError();
  }

  /** Done marks for orders finished without a delivery record (skipped or dead-lettered). */
  private async finish(j: DeliveryJob, orders: DeliveryOrder[]): Promise<void> {
    if (j.redrive === true || orders.length === 0) return;
    await this.d.redis.zadd(
      doneKey(this.name, j.topic, j.partition),
      ...doneRuns(orders.map((o) => o.offset)),
    );
  }

  private async deadLetter(j: DeliveryJob, o: DeliveryOrder, reason: string, attempts: number): Promise<void> {
    const at = Date.now();
    await this.d.logClient.deadLetter(this.d.dlqTopic, {
      key: o.orderId,
      value: o.body,
      headers: {
        reason,
        attempts: String(attempts),
        downstream: this.name,
        'source-topic': j.topic,
        'source-partition': String(j.partition),
        'source-offset': String(o.offset),
        'dead-lettered-at': String(at),
      },
    });
    const item = JSON.stringify({ orderId: o.orderId, reason, attempts, at, topic: j.topic, partition: j.partition, offset: o.offset, body: o.body });
    await this.d.redis
      .multi()
      .hset(keys.order(o.orderId), 'status', 'dead_lettered', 'deadLetteredAt', String(at), 'reason', reason, 'attempts', String(attempts))
      .expire(keys.order(o.orderId), ORDER_TTL_S)
      .zadd(controlKeys.dlqIndex(this.name), at, o.orderId)
      .hset(controlKeys.dlqItems(this.name), o.orderId, item)
      .exec();
    await this.finish(j, [o]);
    this.d.metrics.deliveries.inc({ downstream: this.name, outcome: 'dead_lettered' });
    this.d.metrics.dlq.inc({ downstream: this.name });
    this.d.log.warn({ downstream: this.name, orderId: o.orderId, reason, attempts }, 'dead-lettered');
    // Keep the Redis index bounded (the durable copy is the DLQ topic).
    const size = await this.d.redis.zcard(controlKeys.dlqIndex(this.name));
    if (size > DLQ_INDEX_CAP) {
      const old = await this.d.redis.zrange(controlKeys.dlqIndex(this.name), '0', String(size - DLQ_INDEX_CAP - 1));
      if (old.length > 0) await this.d.redis.multi().zrem(controlKeys.dlqIndex(this.name), ...old).hdel(controlKeys.dlqItems(this.name), ...old).exec();
    }
  }

  /** Re-drive requests (from the admin API) go back through the same rate-limited queue. */
  private async redrive(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const orderId = await this.d.redis.lpop(controlKeys.redrive(this.name));
      if (orderId === null) return;
      const raw = await this.d.redis.hget(controlKeys.dlqItems(this.name), orderId);
      if (raw === null) continue;
      const item = JSON.parse(raw) as { body: string; topic: string; partition: number; offset: number };
      await this.queue.add(
        'deliver',
        { topic: item.topic, partition: item.partition, orders: [{ orderId, body: item.body, offset: item.offset, acceptedAt: Date.now() }], redrive: true },
        { ...this.jobOptions(), jobId: `redrive:${orderId}:${Date.now()}` },
      );
      this.d.metrics.redriven.inc({ downstream: this.name });
    }
  }

  /** Backlog and ETA, to Redis (gateway admission) and Prometheus. */
  async publishBacklog(): Promise<{ backlog: number; etaSeconds: number }> {
    const c = this.d.config;
    const lags = await this.d.logClient.lag(this.groupId, c.topic);
    const backlog = lags.reduce((n, l) => n + l.lag, 0);
    const ages = this.pump?.oldestPending() ?? new Map<number, number>();
    for (const l of lags) {
      const labels = { downstream: this.name, partition: String(l.partition) };
      this.d.metrics.lagMessages.set(labels, l.lag);
      if (ages.has(l.partition)) this.d.metrics.lagSeconds.set(labels, (ages.get(l.partition) ?? 0) / 1000);
      else if (l.lag === 0) this.d.metrics.lagSeconds.set(labels, 0);
    }
    const rate = this.state.effectiveRate;
    let etaSeconds: number;
    if (backlog === 0) etaSeconds = 0;
    else if (rate > 0) etaSeconds = backlog / rate;
    else {
      // Paused: the wait for the next window plus the drain at its rate (manual pause: unknown, capped).
      const wait = this.state.manualPause ? 86_400 : secondsUntilOpen(c, this.now());
      const resumeRate = windowState(c, this.now() + (Number.isFinite(wait) ? wait * 1000 + 60_000 : 0)).rate || c.rate;
      etaSeconds = (Number.isFinite(wait) ? wait : 7 * 86_400) + backlog / resumeRate;
    }
    this.d.metrics.eta.set({ downstream: this.name }, etaSeconds);
    this.d.metrics.backlog.set({ downstream: this.name }, backlog);
    await this.d.redis
      .multi()
      .hset(keys.backlog(this.name), 'backlog', String(backlog), 'etaSeconds', etaSeconds.toFixed(1), 'ratePerSecond', String(rate), 'paused', this.state.paused ? '1' : '0', 'updatedAt', String(Date.now()))
      .sadd(keys.backlogIndex(), this.name)
      .exec();
    return { backlog, etaSeconds };
  }

  /** Finishes in-flight deliveries, commits what is done, and stops. */
  /**
   * Runs `step` until it succeeds, backing off from 250 ms to 5 s between attempts; false when
   * stop() was called meanwhile.
   */
  private async retryUntilStopped(what: string, step: () => Promise<void>): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      if (this.stopping) return false;
      try {
        await step();
        return true;
      } catch (err) {
        const delayMs = Math.min(5000, 250 * 2 ** Math.min(attempt, 5));
        this.d.log.warn({ err: (err as Error).message, downstream: this.name, attempt: attempt + 1, retryInMs: delayMs }, `${what} failed; retrying`);
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.pump?.halt();
    await this.worker?.close();
    await this.pump?.stop();
    await this.queue.close();
    await this.workerConnection?.quit().catch(() => undefined);
  }
}

/**
 * Jobs per limiter window, as a share of the rate. Every window costs a gap (see nextBoost), so
 * fewer, larger windows lose less of the rate to them; a second no longer holds whole windows
 * (the quota of starts, see secondQuota, ends it within half a job of the rate), so their size
 * no longer sets how far a second is off.
 */
const WINDOW_SHARE = 0.045;
/** Most the limiter's nominal rate may exceed the configured one to make up for the gaps between its windows. */
const MAX_BOOST = 1.25;

/**
 * Most jobs per limiter window: half the burst (the other half is room for the boost), and about
 * 4.5 % of the rate (45 ms of it).
 */
export function windowCap(rate: number, burst: number): number {
  return Math.max(1, Math.min(Math.floor(burst / 2), Math.round(rate * WINDOW_SHARE)));
}

export interface Limiter {
  max: number;
  duration: number;
}

/** How often pacing reads the second's count and steers the limiter. */
export const PACE_SLOT_MS = 50;
/** Pacing steers only rates of at least this many limiter windows a second (below, the base limiter holds). */
const PACE_MIN_WINDOWS = 10;
/** Pacing never plans below this share of the rate (a second that ran ahead slows down, it does not stop). */
const PACE_FLOOR = 0.25;
/**
 * Pacing plans to have a second's deliveries this long before the second ends; the quota (see
 * secondQuota) then holds the limiter closed for the rest. A stall of up to about this long
 * anywhere in the second costs nothing (with windows at the rate + burst bound, a second can
 * run about 5 % ahead of the rate).
 */
export const PACE_RESERVE_MS = 50;

/**
 * The orders a wall-clock second may start, or 0 for none: the rate. A job starts only while its
 * middle is within the second's quota (see DeliveryWrites.start); one that is not goes back to
 * the window, and BullMQ's limiter is held closed until the second ends.
 * Only where pacing steers (see paceLimiter).
 */
export function secondQuota(p: Pacing): number {
  if (!steered(baseWindow(p).baseMs)) return 0;
  return Math.max(1, Math.round(p.rate));
}

/** The base plan's windows: `max` jobs (windowCap) per `baseMs` at the rate times the boost. */
function baseWindow(p: Pacing): { max: number; baseMs: number } {
  const max = windowCap(p.rate / p.batch, p.burst / p.batch);
  return { max, baseMs: Math.max(1, Math.round((1000 * max) / ((p.rate * p.boost) / p.batch))) };
}

/** Whether pacing steers a base plan of windows this long: not below PACE_MIN_WINDOWS a second, where a second's count says too little to steer by. */
function steered(baseMs: number): boolean {
  return baseMs <= 1000 / PACE_MIN_WINDOWS;
}

/** What pacing steers: the rate in force and its burst (orders/s), orders per job, the limiter boost. */
export interface Pacing {
  rate: number;
  burst: number;
  batch: number;
  boost: number;
}

/**
 * The nominal rate (orders/s) for the rest of the current wall-clock second: the deliveries still
 * missing to reach `rate` (plus half a window) this second, over the time left until
 * PACE_RESERVE_MS before its end (at least one slot), times the boost (the limiter's gaps); at
 * least PACE_FLOOR of the rate. paceLimiter bounds it; secondQuota stops the second.
 */
export function paceTarget(p: Pacing, countSoFar: number, elapsedMs: number): number {
  const left = Math.max(PACE_SLOT_MS, 1000 - PACE_RESERVE_MS - elapsedMs) / 1000;
  // Aiming half a window past the rate makes most seconds reach their quota (see secondQuota),
  // which then ends them at the rate.
  const aim = p.rate + (windowCap(p.rate / p.batch, p.burst / p.batch) * p.batch) / 2;
  const wanted = (Math.max(0, aim - countSoFar) / left) * p.boost;
  return Math.max(p.rate * PACE_FLOOR, wanted);
}

/**
 * The shortest window duration (ms) for windows of `max` jobs of `batch` orders such that no
 * second, aligned or not, can hold more than rate + burst orders: a second holds at most
 * floor(1000 / duration) + 1 window starts, each of at most `max` jobs, whatever the gaps.
 */
export function shortestWindow(rate: number, burst: number, batch: number, max: number): number {
  const allowedStarts = Math.floor((rate + burst) / (max * batch));
  // floor(1000 / d) + 1 <= allowedStarts  <=>  1000 / d < allowedStarts  <=>  d > 1000 / allowedStarts
  return Math.floor(1000 / Math.max(1, allowedStarts)) + 1;
}

/**
 * The limiter (in jobs of p.batch orders) for paceTarget: windows of the largest size (every
 * window costs a gap, see nextBoost) and the whole-millisecond duration nearest the target, at
 * least shortestWindow (the rate + burst bound) and, when slowing down, no window reaching
 * further past the end of the second than the base plan's would.
 */
export function paceLimiter(p: Pacing, countSoFar: number, elapsedMs: number): Limiter {
  const { max, baseMs: base } = baseWindow(p);
  const shortest = shortestWindow(p.rate, p.burst, p.batch, max);
  if (!steered(base)) return { max, duration: Math.max(shortest, base) };
  const wanted = Math.round((1000 * max) / (paceTarget(p, countSoFar, elapsedMs) / p.batch));
  const longest = Math.max(base, 1000 - elapsedMs);
  return { max, duration: Math.max(shortest, Math.min(longest, wanted)) };
}

/**
 * The boost that makes the delivered rate match the configured one: BullMQ starts a limiter
 * window only when a worker asks after the previous one expired, so every window is followed by
 * a gap (the worker's timer, a Redis round trip) and the limiter delivers less than its nominal
 * rate, by gap/window. `nominal` is the limiter's rate, `achieved` the deliveries/s measured
 * over whole seconds since it was applied. Null when the measurement says nothing about the
 * limiter (far below: the window ran dry or the processes cannot keep up).
 *
 * The boost stays at most (rate + burst − windowCap) / rate, so a second on track (see
 * paceLimiter) is inside rate + burst even if the gaps vanished; pacing's own bound is
 * shortestWindow.
 */
export function nextBoost(rate: number, burst: number, nominal: number, achieved: number): number | null {
  if (!(rate > 0) || !(achieved > 0) || achieved < rate * 0.8) return null;
  const ceiling = Math.min(MAX_BOOST, 1 + (burst - windowCap(rate, burst)) / rate);
  return Math.max(Math.min(ceiling, 0.95), Math.min(ceiling, Math.max(0.95, nominal / achieved)));
}
