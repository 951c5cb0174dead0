/**
 * HTTP delivery of orders to a downstream (undici pool per origin, keep-alive), with each order's
 * id as Idempotency-Key so any redelivery is recognisable downstream; and the process's delivery
 * lanes, which send the orders of every running job, at most `concurrency` at a time.
 */
import { Pool, type Dispatcher } from 'undici';
import { classify, classifyError, type Outcome } from './classify.ts';

/** Where an answer goes: the index of the order among its job's sends, and what it came to. */
export interface OutcomeSink {
  settle(index: number, outcome: Outcome): void;
}

export interface DeliveryClient {
  /**
   * POSTs one order; `sink.settle(index, outcome)` is called once with the outcome, never
   * synchronously from within this call.
   */
  deliver(body: string, orderId: string, sink: OutcomeSink, index: number): void;
  close(): Promise<void>;
}

export class HttpDelivery implements DeliveryClient {
  private readonly pool: Pool;
  private readonly path: string;

  constructor(
    url: string,
    private readonly timeoutMs: number,
    connections: number,
  ) {
    const u = new URL(url);
    // undici's connect/headers/body timeouts bound every request (no per-request AbortSignal timer).
    this.pool = new Pool(u.origin, { connections, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, connect: { timeout: timeoutMs } });
    this.path = `${u.pathname}${u.search}`;
  }

  /**
   * One POST through undici's dispatcher API: the answer's status and Retry-After are read from
   * the raw headers and its body is discarded as it arrives, with no response stream, body
   * promise or promise per delivery (what pool.request would build). The pool's headers and body
   * timeouts bound it.
   */
  deliver(body: string, orderId: string, sink: OutcomeSink, index: number): void {
    const handler = new AnswerHandler(sink, index);
    try {
      this.pool.dispatch({ path: this.path, method: 'POST', headers: ['content-type', 'application/json', 'idempotency-key', orderId], body }, handler as unknown as Dispatcher.DispatchHandler);
    } catch (err) {
      process.nextTick(() => handler.onError(err as Error));
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

/**
 * undici's handler of one delivery's answer. A class rather than an object of arrow functions:
 * this runs for every delivery, and tsx (esbuild keepNames) wraps each arrow function stored in
 * a property in a defineProperty call that costs about 0.4 µs.
 */
class AnswerHandler {
  private status = 0;
  private retryAfter: string | undefined;
  private settled = false;

  constructor(
    private readonly sink: OutcomeSink,
    private readonly index: number,
  ) {}

  onConnect(): void {}

  onHeaders(statusCode: number, rawHeaders: Buffer[]): boolean {
    this.status = statusCode;
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      const name = rawHeaders[i];
      if (name.length === 11 && name.toString('latin1').toLowerCase() === 'retry-after') this.retryAfter = rawHeaders[i + 1].toString('latin1');
    }
    return true;
  }

  onData(): boolean {
    return true;
  }

  onComplete(): void {
    this.settle(classify(this.status, this.retryAfter));
  }

  onError(err: Error): void {
    this.settle(classifyError(err));
  }

  private settle(outcome: Outcome): void {
    if (this.settled) return;
    this.settled = true;
    this.sink.settle(this.index, outcome);
  }
}

/** One job's orders as the lanes send them: their outcomes, and when each went out. */
export class JobSends implements OutcomeSink {
  readonly outcomes: Outcome[];
  /** The next order to send. */
  next = 0;
  private left: number;
  /** performance.now() when each order went out. */
  private readonly sentAt: Float64Array;
  /**
   * Sum over the orders of when each reached the downstream, in ms after `startedAt`: sent, then
   * about half its round trip.
   */
  arrivals = 0;

  constructor(
    readonly orders: readonly { body: string; orderId: string }[],
    private readonly startedAt: number,
    private readonly lanes: DeliveryLanes,
    private readonly resolve: (sends: JobSends) => void,
  ) {
    this.outcomes = new Array<Outcome>(orders.length);
    this.left = orders.length;
    this.sentAt = new Float64Array(orders.length);
  }

  sent(index: number, at: number): void {
    this.sentAt[index] = at;
  }

  settle(index: number, outcome: Outcome): void {
    const took = performance.now() - this.sentAt[index];
    this.arrivals += this.sentAt[index] - this.startedAt + took / 2;
    this.outcomes[index] = outcome;
    this.lanes.answered(took);
    if (--this.left === 0) this.resolve(this);
  }
}

/**
 * The process's delivery lanes: every running job's orders are sent in the order the jobs asked,
 * at most `concurrency` at a time across all of them, each next send starting from the answer
 * that frees its lane. A queue of jobs with a cursor each, rather than a waiter per order.
 */
export class DeliveryLanes {
  private queue: (JobSends | undefined)[] = [];
  private head = 0;
  private inFlight = 0;
  private sending = false;
  private refillQueued = false;
  private readonly refill = (): void => {
    this.refillQueued = false;
    this.fill();
  };

  /** `observe(ms)`: each delivery's round trip. */
  constructor(
    private readonly client: DeliveryClient,
    private readonly concurrency: number,
    private readonly observe: (ms: number) => void,
  ) {}

  /** Sends the orders; resolves once every one has its outcome. `startedAt`: performance.now() the job's arrivals are measured from. */
  send(orders: readonly { body: string; orderId: string }[], startedAt: number): Promise<JobSends> {
    return new Promise<JobSends>((resolve) => {
      const sends = new JobSends(orders, startedAt, this, resolve);
      if (orders.length === 0) {
        resolve(sends);
        return;
      }
      this.queue.push(sends);
      this.fill();
    });
  }

  /** Deliveries in flight. */
  get busy(): number {
    return this.inFlight;
  }

  /**
   * An answer freed a lane. The next send starts in a microtask, not from inside undici's
   * callback (which runs in the middle of its parser).
   */
  answered(tookMs: number): void {
    this.inFlight--;
    this.observe(tookMs);
    if (!this.refillQueued) {
      this.refillQueued = true;
      queueMicrotask(this.refill);
    }
  }

  private fill(): void {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.inFlight < this.concurrency && this.head < this.queue.length) {
        const sends = this.queue[this.head] as JobSends;
        const i = sends.next++;
        if (sends.next === sends.orders.length) {
          this.queue[this.head++] = undefined;
          if (this.head === this.queue.length) {
            this.queue = [];
            this.head = 0;
          } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
            this.queue = this.queue.slice(this.head);
            this.head = 0;
          }
        }
        this.inFlight++;
        sends.sent(i, performance.now());
        const o = sends.orders[i];
        this.client.deliver(o.body, o.orderId, sends, i);
      }
    } finally {
      this.sending = false;
    }
  }
}
