/**
 * One downstream: its BullMQ queue (the window), the pump that fills it, the rate-limited
 * workers that deliver, and a controller that applies the schedule, manual pause/resume/rate
 * (persisted in Redis), and AIMD on pushback to the queue's global (fleet-wide) rate limit.
 * It publishes lag and the drain ETA to Redis (for the gateway's admission) and Prometheus.
 */
import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../../lib/src/logger.ts';
import { keys } from '../../lib/src/redis-keys.ts';
import { CircuitBreaker } from './breaker.ts';
import { burstOf, type DownstreamConfig } from './config.ts';
import type { DeliveryClient } from './delivery.ts';
import type { LogClient } from './log-client.ts';
import type { DrainerMetrics } from './metrics.ts';
import { Pump, doneKey, type DeliveryJob } from './pump.ts';
import { secondsUntilOpen, windowState } from './schedule.ts';

const controlKeys = {
  control: keys.downstreamControl,
  aimd: keys.downstreamAimd,
  aimdCut: keys.downstreamAimdCut,
  aimdCreep: keys.downstreamAimdCreep,
  dlqIndex: keys.dlqIndex,
  dlqItems: keys.dlqItems,
  redrive: keys.redrive,
};

const DLQ_INDEX_CAP = 100_000;
/** Most jobs pending in BullMQ per downstream, whatever the rate. */
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
  private pump: Pump | null = null;
  private timers: NodeJS.Timeout[] = [];
  private readonly breaker = new CircuitBreaker();
  private applied = '';
  state: RateState;
  private readonly name: string;
  private readonly now: () => number;

  constructor(private readonly d: DownstreamDeps) {
    this.name = d.config.name;
    this.now = d.now ?? Date.now;
    this.queue = new Queue(`deliver-${this.name}`, { connection: d.bullConnection, prefix: 'spw:bull' });
    const ws = windowState(d.config, this.now());
    this.state = { effectiveRate: ws.rate, scheduleRate: ws.rate, window: ws.window, paused: ws.paused, manualPause: false, override: null, aimdFactor: 1 };
  }

  private get groupId(): string {
    return this.d.config.group ?? `spillway-drainer-${this.name}`;
  }

  async start(): Promise<void> {
    const c = this.d.config;
    await this.control();
    this.worker = new Worker(`deliver-${this.name}`, (job: Job<DeliveryJob>) => this.process(job), {
      connection: this.d.bullConnection,
      prefix: 'spw:bull',
      concurrency: c.concurrency,
      maxStalledCount: 1000,
    });
    this.worker.on('error', (err) => this.d.log.warn({ err: err.message, downstream: this.name }, 'worker error'));
    this.pump = new Pump({
      name: this.name,
      topic: c.topic,
      queue: this.queue,
      redis: this.d.redis,
      consumer: this.d.logClient.consumer(this.groupId, c.topic),
      // A few seconds of the permitted rate, bounded: the backlog stays in the log, not in Redis.
      windowSize: () => Math.min(MAX_WINDOW, Math.max(burstOf(c, c.rate), 10, Math.ceil(Math.max(this.state.effectiveRate, c.rate * 0.05) * c.windowSeconds))),
      jobOptions: {
        attempts: c.retry.attempts,
        backoff: { type: 'exponential', delay: c.retry.backoffMs, jitter: c.retry.jitter },
        removeOnComplete: { age: 3600, count: 100_000 },
        removeOnFail: { age: 24 * 3600 },
      },
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
    await this.pump.start();
    this.d.log.info({ downstream: this.name, url: c.url, topic: c.topic, group: this.groupId, rate: c.rate }, 'draining');
  }

  /** Applies schedule, manual control and AIMD to the queue's global rate limit (or pause). */
  async control(): Promise<void> {
    const c = this.d.config;
    const now = this.now();
    const ws = windowState(c, now);
    const [ctl, factorRaw, cut, meta] = await Promise.all([
      this.d.redis.hgetall(controlKeys.control(this.name)),
      this.d.redis.get(controlKeys.aimd(this.name)),
      this.d.redis.exists(controlKeys.aimdCut(this.name)),
      this.queue.getMeta(),
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
    const key = paused ? 'paused' : `${effectiveRate.toFixed(3)}`;
    const limiter = limiterFor(effectiveRate, burstOf(c, effectiveRate));
    // The queue's own state in Redis must match too: after Redis loses data it holds no limit
    // (BullMQ would then deliver unlimited) and no pause, whatever was applied before.
    const inSync = paused ? meta.paused === true : meta.paused !== true && meta.max === limiter.max && meta.duration === limiter.duration;
    if (key === this.applied && inSync) return;
    if (paused) {
      await this.queue.pause();
    } else {
      await this.queue.setGlobalRateLimit(limiter.max, limiter.duration);
      if (meta.paused === true) await this.queue.resume();
    }
    this.d.log.info(
      { downstream: this.name, paused, effectiveRate, window: ws.window, manualPause, override, aimdFactor: factor, ...(key === this.applied ? { reapplied: true } : {}) },
      key === this.applied ? 'delivery rate re-applied (queue state in Redis differed)' : 'delivery rate applied',
    );
    this.applied = key;
  }

  /** The worker's processor: deliver, then record the outcome; throwing means "retry later". */
  private async process(job: Job<DeliveryJob>): Promise<string> {
    const j = job.data;
    const m = this.d.metrics;
    const labels = { downstream: this.name };
    // An order the gateway answered 503 for (its append outcome was unknown) is never delivered.
    if ((await this.d.redis.hget(keys.order(j.orderId), 'status')) === 'rejected') {
      await this.finish(j);
      m.deliveries.inc({ ...labels, outcome: 'skipped_rejected' });
      return 'skipped';
    }
    const started = performance.now();
    const outcome = await this.d.delivery.deliver(j.body, j.orderId);
    m.latency.observe(labels, (performance.now() - started) / 1000);
    switch (outcome.kind) {
      case 'delivered': {
        this.breaker.success();
        m.deliveries.inc({ ...labels, outcome: 'delivered' });
        const now = String(Date.now());
        await Promise.all([
          this.d.redis.hset(keys.order(j.orderId), 'status', 'delivered', 'deliveredAt', now, `deliveredAt:${this.name}`, now, 'attempts', String(job.attemptsMade + 1)),
          this.d.redis.expire(keys.order(j.orderId), ORDER_TTL_S),
          this.finish(j),
        ]);
        if (j.redrive) await this.d.redis.multi().zrem(controlKeys.dlqIndex(this.name), j.orderId).hdel(controlKeys.dlqItems(this.name), j.orderId).exec();
        return 'delivered';
      }
      case 'pushback': {
        m.deliveries.inc({ ...labels, outcome: 'pushback' });
        // Multiplicative decrease, at most once a second fleet-wide.
        if ((await this.d.redis.set(controlKeys.aimdCut(this.name), '1', 'PX', 1000, 'NX')) === 'OK') {
          const f = Number((await this.d.redis.get(controlKeys.aimd(this.name))) ?? 1);
          await this.d.redis.set(controlKeys.aimd(this.name), String(Math.max(0.05, f * 0.7)));
          this.applied = ''; // re-apply at the next control step
        }
        await this.queue.rateLimit(Math.min(60_000, Math.max(50, outcome.retryAfterMs)));
        throw Worker.RateLimitError();
      }
      case 'retry': {
        m.deliveries.inc({ ...labels, outcome: 'failed' });
        const pause = this.breaker.failure();
        m.breakerOpen.set(labels, this.breaker.state === 'open' ? 1 : 0);
        if (pause > 0) {
          this.d.log.warn({ downstream: this.name, pauseMs: pause, reason: outcome.reason }, 'circuit open: pausing deliveries');
          await this.queue.rateLimit(pause);
        }
        const attempts = job.opts.attempts ?? 1;
        if (job.attemptsMade + 1 >= attempts) {
          await this.deadLetter(j, `retries exhausted: ${outcome.reason}`, job.attemptsMade + 1);
          return 'dead_lettered';
        }
        m.retries.inc(labels);
        throw new Error(outcome.reason);
      }
      case 'dead':
        this.breaker.success(); // the downstream answered: it is up
        await this.deadLetter(j, outcome.reason, job.attemptsMade + 1);
        return 'dead_lettered';
    }
  }

  private async finish(j: DeliveryJob): Promise<void> {
    if (!j.redrive) await this.d.redis.zadd(doneKey(this.name, j.topic, j.partition), j.offset, String(j.offset));
  }

  private async deadLetter(j: DeliveryJob, reason: string, attempts: number): Promise<void> {
    const at = Date.now();
    await this.d.logClient.deadLetter(this.d.dlqTopic, {
      key: j.orderId,
      value: j.body,
      headers: {
        reason,
        attempts: String(attempts),
        downstream: this.name,
        'source-topic': j.topic,
        'source-partition': String(j.partition),
        'source-offset': String(j.offset),
        'dead-lettered-at': String(at),
      },
    });
    const item = JSON.stringify({ orderId: j.orderId, reason, attempts, at, topic: j.topic, partition: j.partition, offset: j.offset, body: j.body });
    await this.d.redis
      .multi()
      .hset(keys.order(j.orderId), 'status', 'dead_lettered', 'deadLetteredAt', String(at), 'reason', reason, 'attempts', String(attempts))
      .expire(keys.order(j.orderId), ORDER_TTL_S)
      .zadd(controlKeys.dlqIndex(this.name), at, j.orderId)
      .hset(controlKeys.dlqItems(this.name), j.orderId, item)
      .exec();
    await this.finish(j);
    this.d.metrics.deliveries.inc({ downstream: this.name, outcome: 'dead_lettered' });
    this.d.metrics.dlq.inc({ downstream: this.name });
    this.d.log.warn({ downstream: this.name, orderId: j.orderId, reason, attempts }, 'dead-lettered');
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
      const c = this.d.config;
      await this.queue.add(
        'deliver',
        { orderId, body: item.body, topic: item.topic, partition: item.partition, offset: item.offset, acceptedAt: Date.now(), redrive: true },
        { jobId: `redrive:${orderId}:${Date.now()}`, attempts: c.retry.attempts, backoff: { type: 'exponential', delay: c.retry.backoffMs, jitter: c.retry.jitter }, removeOnComplete: true },
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
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.pump?.halt();
    await this.worker?.close();
    await this.pump?.stop();
    await this.queue.close();
  }
}

/** BullMQ limiter for a rate with a burst: at most `max` jobs per `duration` ms. */
export function limiterFor(rate: number, burst: number): { max: number; duration: number } {
  const max = Math.max(1, Math.min(burst, Math.floor(rate)));
  return { max, duration: Math.max(1, Math.round((1000 * max) / rate)) };
}
