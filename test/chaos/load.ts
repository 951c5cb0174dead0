/**
 * The chaos load driver: an open model (a fixed arrival rate, whatever the answers take) of
 * `POST /v1/orders` through undici keep-alive connections, spread round-robin over the gateways a
 * load balancer would route to (a killed gateway is taken out before the kill and put back once
 * it is ready again). Every order has a unique user and Idempotency-Key and is tagged with the
 * phase (fault) it was sent in; every answer is recorded: 202 with orderId/partition/offset, 4xx
 * and 503 with their error code, other 5xx, a timeout (a hang) or a cut connection.
 *
 * A small share of orders asks the downstream simulator to refuse them (`metadata.simulate:
 * "422"`), so the dead-letter path is exercised too.
 */
import { Agent, request } from 'undici';

export interface SkuPlan {
  sku: string;
  stock: number;
  /** Relative share of the orders of its phase. */
  weight: number;
}

export interface OrderRecord {
  seq: number;
  phase: string;
  userId: string;
  sku: string;
  poison: boolean;
  gateway: number;
  sentAt: number;
  doneAt: number;
  /** HTTP status, or 'timeout' (no answer within the hang limit), 'cut' (connection reset by a gateway being killed), 'conn' (a connection error to a gateway that should be up), 'no-gateway' (none was up). */
  status: number | 'timeout' | 'cut' | 'conn' | 'no-gateway' | 'pending';
  code?: string;
  orderId?: string;
  partition?: number;
  offset?: number;
}

export interface LoadOptions {
  rate: number;
  gatewayUrl: (i: number) => string;
  gatewayUp: readonly boolean[];
  skus: (phase: string) => SkuPlan[];
  poisonRatio: number;
  random: () => number;
  /** An answer slower than this is a hang. */
  hangMs: number;
  runId: string;
}

export class LoadDriver {
  readonly records: OrderRecord[] = [];
  readonly driverErrors: string[] = [];
  phase = 'warmup';
  private readonly agent: Agent;
  private timer: NodeJS.Timeout | null = null;
  private t0 = 0;
  private sent = 0;
  private rr = 0;
  private readonly inFlight = new Set<Promise<void>>();
  /** Gateways being killed right now: a connection error from them is expected. */
  readonly dying = new Set<number>();

  constructor(private readonly opts: LoadOptions) {
    this.agent = new Agent({ keepAliveTimeout: 4000, connections: 256, headersTimeout: opts.hangMs, bodyTimeout: opts.hangMs, connect: { timeout: 5000 } });
  }

  start(): void {
    this.t0 = performance.now();
    this.timer = setInterval(() => this.tick(), 10);
  }

  private tick(): void {
    const due = Math.floor(((performance.now() - this.t0) * this.opts.rate) / 1000);
    // After a stall of this process, catch up at most a second's worth at once.
    if (due - this.sent > this.opts.rate) this.sent = due - this.opts.rate;
    while (this.sent < due) {
      this.sent += 1;
      const p = this.send().catch((err: unknown) => {
        // A bug in the driver must not kill the run (its processes would be orphaned): recorded as a failure.
        this.driverErrors.push(String(err));
      });
      this.inFlight.add(p);
      void p.finally(() => this.inFlight.delete(p));
    }
  }

  private pickSku(phase: string): SkuPlan {
    const plans = this.opts.skus(phase);
    if (plans.length === 0) throw new Error(`no SKUs planned for phase ${phase}`);
    const total = plans.reduce((n, s) => n + s.weight, 0);
    let r = this.opts.random() * total;
    for (const s of plans) {
      r -= s.weight;
      if (r < 0) return s;
    }
    return plans[plans.length - 1];
  }

  private pickGateway(): number {
    const n = this.opts.gatewayUp.length;
    for (let k = 0; k < n; k++) {
      const i = (this.rr + k) % n;
      if (this.opts.gatewayUp[i]) {
        this.rr = i + 1;
        return i;
      }
    }
    return -1;
  }

  private async send(): Promise<void> {
    const seq = this.records.length;
    const phase = this.phase;
    const sku = this.pickSku(phase).sku;
    const poison = this.opts.random() < this.opts.poisonRatio;
    const userId = `${this.opts.runId}-u${seq}`;
    const rec: OrderRecord = { seq, phase, userId, sku, poison, gateway: -1, sentAt: Date.now(), doneAt: 0, status: 'pending' };
    this.records.push(rec);
    const gw = this.pickGateway();
    rec.gateway = gw;
    if (gw < 0) {
      rec.status = 'no-gateway';
      rec.doneAt = Date.now();
      return;
    }
    const body = JSON.stringify({ sku, userId, quantity: 1, priceCents: 1999, ...(poison ? { metadata: { simulate: '422' } } : {}) });
    try {
      const res = await request(`${this.opts.gatewayUrl(gw)}/v1/orders`, {
        method: 'POST',
        dispatcher: this.agent,
        headers: { 'content-type': 'application/json', 'idempotency-key': `${this.opts.runId}-k${seq}` },
        body,
      });
      const text = await res.body.text();
      rec.status = res.statusCode;
      rec.doneAt = Date.now();
      try {
        const v = JSON.parse(text) as { orderId?: string; partition?: number; offset?: number; error?: { code?: string } };
        if (res.statusCode === 202) {
          rec.orderId = v.orderId;
          rec.partition = v.partition;
          rec.offset = v.offset;
        } else rec.code = v.error?.code;
      } catch {
        rec.code = 'NOT_JSON';
      }
    } catch (err) {
      rec.doneAt = Date.now();
      const code = (err as { code?: string }).code ?? '';
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') rec.status = 'timeout';
      else rec.status = this.dying.has(gw) || !this.opts.gatewayUp[gw] ? 'cut' : 'conn';
      rec.code = code || (err as Error).message;
    }
  }

  /** Stops sending and waits for every answer (each is bounded by the hang limit). */
  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await Promise.allSettled([...this.inFlight]);
  }

  async close(): Promise<void> {
    await this.stop();
    await this.agent.close();
  }
}
