/**
 * Backlog-aware admission. The drainer publishes, per downstream, its backlog and drain ETA in
 * Redis; this module polls them (never on the request path) and sheds new orders with 503
 * BACKLOG_FULL while the worst ETA is above the budget, resuming below a lower mark
 * (hysteresis, so admission does not flap). It also provides estimatedDeliverySeconds.
 */
import type { Redis } from 'ioredis';
import { keys } from '../../lib/src/redis-keys.ts';
import type { Logger } from '../../lib/src/logger.ts';

export interface BacklogView {
  downstream: string;
  backlog: number;
  etaSeconds: number;
  ratePerSecond: number;
  updatedAt: number;
}

export class Admission {
  shedding = false;
  etaSeconds = 0;
  backlog = 0;
  views: BacklogView[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly opts: { budgetS: number; resumeS: number; maxOrders: number; pollMs?: number },
    private readonly log: Logger,
  ) {}

  start(): void {
    const tick = () => {
      this.refresh().catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'backlog refresh failed'));
    };
    tick();
    this.timer = setInterval(tick, this.opts.pollMs ?? 500);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async refresh(): Promise<void> {
    const names = await this.redis.smembers(keys.backlogIndex());
    const views: BacklogView[] = [];
    if (names.length > 0) {
      const pipe = this.redis.pipeline();
      for (const n of names) pipe.hgetall(keys.backlog(n));
      const res = (await pipe.exec()) ?? [];
      names.forEach((downstream, i) => {
        const h = (res[i]?.[1] ?? {}) as Record<string, string>;
        if (h.etaSeconds === undefined) return;
        views.push({ downstream, backlog: Number(h.backlog ?? 0), etaSeconds: Number(h.etaSeconds), ratePerSecond: Number(h.ratePerSecond ?? 0), updatedAt: Number(h.updatedAt ?? 0) });
      });
    }
    this.apply(views);
  }

  /** Decides shedding from the published views (separate from I/O for tests). */
  apply(views: BacklogView[]): void {
    this.views = views;
    this.etaSeconds = views.reduce((m, v) => Math.max(m, v.etaSeconds), 0);
    this.backlog = views.reduce((m, v) => Math.max(m, v.backlog), 0);
    const overCount = this.opts.maxOrders > 0 && this.backlog > this.opts.maxOrders;
    const underCount = this.opts.maxOrders === 0 || this.backlog < this.opts.maxOrders * (this.opts.resumeS / this.opts.budgetS);
    const was = this.shedding;
    if (!this.shedding && (this.etaSeconds > this.opts.budgetS || overCount)) this.shedding = true;
    else if (this.shedding && this.etaSeconds < this.opts.resumeS && underCount) this.shedding = false;
    if (was !== this.shedding) this.log.warn({ shedding: this.shedding, etaSeconds: this.etaSeconds, backlog: this.backlog }, 'backlog admission changed');
  }

  /** Seconds a client should wait before retrying while shedding. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.min(300, Math.ceil((this.etaSeconds - this.opts.resumeS) / 10)));
  }
}
