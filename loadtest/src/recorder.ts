/**
 * What the runner learns from the gateway's answers to `POST /v1/orders` (it watches every HTTP
 * exchange of the script): every accepted order (orderId, partition, offset, SKU, user, quantity,
 * Idempotency-Key), rejections by error code, requests that got no answer, and a per-second
 * timeline (arrivals, dropped iterations, accepted, rejected by reason, intake latencies, and
 * what the poller saw: backlog, ETA, shedding, deliveries, permitted rate).
 */
import { percentile } from './k6/metrics.ts';
import type { HttpExchange } from './k6/runtime.ts';

export interface AcceptedOrder {
  orderId: string;
  sku: string;
  userId: string;
  quantity: number;
  partition: number;
  offset: number;
  idempotencyKey: string | null;
}

export interface Poll {
  backlog?: number;
  etaSeconds?: number;
  shedding?: boolean;
  /** Cumulative deliveries the downstream simulator accepted (its ledger's `received`). */
  delivered?: number;
  /** The drainer's permitted rate (deliveries/s) as published to the gateway. */
  permittedRate?: number;
  /** The simulator's per-second tail: deliveries by the epoch second they were admitted in. */
  perSecond?: { second: number; count: number }[];
}

interface Bucket {
  arrivals: number;
  dropped: number;
  accepted: number;
  rejected: Record<string, number>;
  latencies: number[];
  vus: number;
  poll: Poll | null;
}

export interface TimelinePoint {
  t: number;
  arrivals: number;
  dropped: number;
  accepted: number;
  rejected: Record<string, number>;
  p50: number | null;
  p99: number | null;
  vus: number;
  backlog: number | null;
  etaSeconds: number | null;
  shedding: boolean | null;
  deliveredPerSecond: number | null;
  permittedRate: number | null;
}

export interface Timeline {
  /** Seconds after the test start at which the load ended (the drain wait follows). */
  loadEndS: number;
  points: TimelinePoint[];
  rejectionCodes: string[];
}

const ORDERS_PATH = '/v1/orders';

export class Recorder {
  readonly accepted = new Map<string, AcceptedOrder>();
  /** 202s that repeated an orderId already recorded (idempotent replays). */
  replays = 0;
  /** Idempotency-Keys answered with two different orderIds (a duplicate order). */
  readonly keyConflicts: { idempotencyKey: string; orderIds: string[] }[] = [];
  readonly rejected = new Map<string, number>();
  noAnswer = 0;
  private readonly byKey = new Map<string, string>();
  private readonly buckets: Bucket[] = [];
  private loadEnd = 0;
  /** Deliveries per epoch second from the simulator's tails (exact, whatever the poll jitter). */
  private readonly deliveredByEpochSecond = new Map<number, number>();
  private coveredFrom = Infinity;
  private coveredTo = -Infinity;

  constructor(private readonly startedAt: () => number) {}

  private epochMsAt(perfMs: number): number {
    return performance.timeOrigin + perfMs;
  }

  private bucket(at = performance.now()): Bucket {
    const i = Math.max(0, Math.floor((at - this.startedAt()) / 1000));
    while (this.buckets.length <= i) this.buckets.push({ arrivals: 0, dropped: 0, accepted: 0, rejected: {}, latencies: [], vus: 0, poll: null });
    return this.buckets[i];
  }

  arrival(): void {
    this.bucket().arrivals += 1;
  }

  dropped(): void {
    this.bucket().dropped += 1;
  }

  vus(active: number): void {
    const b = this.bucket();
    b.vus = Math.max(b.vus, active);
  }

  poll(p: Poll): void {
    this.bucket().poll = p;
    if (p.perSecond) {
      const nowS = Math.floor(Date.now() / 1000);
      // The tail covers the last 60 s; the current second is still filling.
      this.coveredFrom = Math.min(this.coveredFrom, nowS - 59);
      this.coveredTo = Math.max(this.coveredTo, nowS - 1);
      for (const { second, count } of p.perSecond) if (second < nowS) this.deliveredByEpochSecond.set(second, count);
    }
  }

  markLoadEnd(): void {
    this.loadEnd = (performance.now() - this.startedAt()) / 1000;
  }

  get acceptedCount(): number {
    return this.accepted.size;
  }

  get rejectedCount(): number {
    let n = 0;
    for (const v of this.rejected.values()) n += v;
    return n;
  }

  observe(x: HttpExchange): void {
    if (x.method !== 'POST' || !x.url.endsWith(ORDERS_PATH)) return;
    if (x.endedAt < this.startedAt()) return; // setup traffic
    const b = this.bucket(x.endedAt);
    if (x.status === 0) {
      this.noAnswer += 1;
      this.rejected.set('NO_ANSWER', (this.rejected.get('NO_ANSWER') ?? 0) + 1);
      b.rejected.NO_ANSWER = (b.rejected.NO_ANSWER ?? 0) + 1;
      return;
    }
    b.latencies.push(x.durationMs);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(x.responseBody) as Record<string, unknown>;
    } catch {
      // not JSON: counted by status below
    }
    if (x.status === 202 && typeof body.orderId === 'string') {
      b.accepted += 1;
      const key = Object.entries(x.requestHeaders).find(([k]) => k.toLowerCase() === 'idempotency-key')?.[1] ?? null;
      const orderId = body.orderId;
      if (key !== null) {
        const prev = this.byKey.get(key);
        if (prev !== undefined && prev !== orderId) this.keyConflicts.push({ idempotencyKey: key, orderIds: [prev, orderId] });
        else this.byKey.set(key, orderId);
      }
      if (this.accepted.has(orderId)) {
        this.replays += 1;
        return;
      }
      let req: Record<string, unknown> = {};
      try {
        req = JSON.parse(x.requestBody ?? '{}') as Record<string, unknown>;
      } catch {
        // the gateway accepted it, so it was JSON
      }
      this.accepted.set(orderId, {
        orderId,
        sku: String(req.sku ?? ''),
        userId: String(req.userId ?? ''),
        quantity: Number(req.quantity ?? 1),
        partition: Number(body.partition),
        offset: Number(body.offset),
        idempotencyKey: key,
      });
      return;
    }
    const err = body.error as { code?: unknown } | undefined;
    const code = typeof err?.code === 'string' ? err.code : `HTTP_${x.status}`;
    this.rejected.set(code, (this.rejected.get(code) ?? 0) + 1);
    b.rejected[code] = (b.rejected[code] ?? 0) + 1;
  }

  /** Arrivals in the last complete second. */
  lastSecondArrivals(): number {
    return this.buckets[this.buckets.length - 2]?.arrivals ?? 0;
  }

  /** Intake latencies (ms) of the last `seconds` whole seconds, for the progress line. */
  recentLatencies(seconds: number): number[] {
    const end = this.buckets.length;
    const out: number[] = [];
    for (let i = Math.max(0, end - seconds); i < end; i++) out.push(...this.buckets[i].latencies);
    return out;
  }

  timeline(): Timeline {
    const codes = new Set<string>();
    let last: { t: number; delivered: number } | null = null;
    const startEpochS = this.epochMsAt(this.startedAt()) / 1000;
    const exact = (t: number): number | null => {
      const e = Math.floor(startEpochS + t);
      return e >= this.coveredFrom && e <= this.coveredTo ? (this.deliveredByEpochSecond.get(e) ?? 0) : null;
    };
    const points = this.buckets.map((b, t) => {
      for (const c of Object.keys(b.rejected)) codes.add(c);
      const sorted = Float64Array.from(b.latencies).sort();
      const delivered = b.poll?.delivered;
      let perSecond: number | null = null;
      if (delivered !== undefined) {
        if (last !== null) perSecond = Math.max(0, delivered - last.delivered) / (t - last.t);
        last = { t, delivered };
      }
      return {
        t,
        arrivals: b.arrivals,
        dropped: b.dropped,
        accepted: b.accepted,
        rejected: b.rejected,
        p50: sorted.length > 0 ? percentile(sorted, 50) : null,
        p99: sorted.length > 0 ? percentile(sorted, 99) : null,
        vus: b.vus,
        backlog: b.poll?.backlog ?? null,
        etaSeconds: b.poll?.etaSeconds ?? null,
        shedding: b.poll?.shedding ?? null,
        deliveredPerSecond: exact(t) ?? perSecond,
        permittedRate: b.poll?.permittedRate ?? null,
      };
    });
    return { loadEndS: this.loadEnd, points, rejectionCodes: [...codes].sort() };
  }
}
