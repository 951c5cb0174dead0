/**
 * An open-model HTTP/1.1 load generator (wrk2-style), run in its own process by the bench.
 *
 * Arrivals are scheduled at exact intervals of 1/rate whatever the server does: request i of a
 * step is due at t0 + i/rate, and its latency is measured from that scheduled instant to the last
 * byte of its answer, so time spent waiting for the generator's timer, for a free connection or
 * in the server all counts (no coordinated omission). Connections are bounded (opened on demand
 * up to maxConnections) and carry one request at a time; when all are busy, due requests wait in
 * a FIFO and keep ageing. A request unanswered timeoutMs after its scheduled start is an error.
 *
 * The HTTP client is deliberately minimal (keep-alive sockets, a prebuilt request string, a status
 * line + Content-Length/chunked parser) so the generator costs a few µs per request and leaves
 * the machine's two cores to the servers; its own lateness (dispatchLag) is reported per step so
 * a generator-bound step can be told apart from a server-bound one. An undici Pool (pipelining 1,
 * same connection bound) can be chosen instead (client: 'undici') to cross-check the raw client;
 * it costs the generator more CPU per request, which matters on a 2-core machine.
 *
 * The bench talks to it over the fork() IPC channel.
 */
import net from 'node:net';
import { Pool } from 'undici';
import { Histogram } from './histogram.ts';
import type { LoadConfig, StepCommand, StepStats } from './protocol.ts';

/** Reconnect instead of reusing a socket idle this long (servers close idle keep-alive at 5 s). */
const IDLE_REUSE_MAX_MS = 4000;
const SWEEP_MS = 50;
const HEADER_END = Buffer.from('\r\n\r\n');

interface Pending {
  seq: number;
  /** Scheduled start (performance.now() ms). */
  sched: number;
  inWindow: boolean;
  /** undici client only: answered or failed already (a timed-out request may still complete). */
  done?: boolean;
}

class Connection {
  current: Pending | null = null;
  buf: Buffer | null = null;
  lastUsed = 0;
  connected = false;
  closed = false;
  constructor(readonly socket: net.Socket) {}
}

/** A FIFO without Array.shift's O(n) copies. */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(v: T): void {
    this.items.push(v);
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }
}

interface StepState {
  cmd: StepCommand;
  t0: number;
  total: number;
  issued: number;
  finished: number;
  windowStart: number;
  windowEnd: number;
  markStartAt: number;
  markEndAt: number;
  scheduleDone: boolean;
  latency: Histogram;
  dispatchLag: Histogram;
  sendDelay: Histogram;
  ok: number;
  okCompletedInWindow: number;
  errors: StepStats['errors'];
  opened: number;
  peakConnections: number;
  peakQueued: number;
  timer: NodeJS.Timeout | undefined;
  sweep: NodeJS.Timeout | undefined;
  done: (s: StepStats) => void;
}

export class OpenLoadGenerator {
  private readonly conns = new Set<Connection>();
  private idle: Connection[] = [];
  private readonly queue = new Fifo<Pending>();
  private seq = 0;
  private step: StepState | null = null;
  private readonly requestHead: string;
  private readonly pool: Pool | null;
  private readonly undiciInFlight = new Set<Pending>();

  constructor(
    private readonly cfg: LoadConfig,
    private readonly onMark: (id: number, phase: 'start' | 'end') => void,
  ) {
    this.requestHead = `POST ${cfg.path} HTTP/1.1\r\nHost: ${cfg.host}:${cfg.port}\r\nContent-Type: application/json\r\n`;
    this.pool = cfg.client === 'undici' ? new Pool(`http://${cfg.host}:${cfg.port}`, { connections: cfg.maxConnections, pipelining: 1, keepAliveTimeout: IDLE_REUSE_MAX_MS }) : null;
  }

  private body(n: number): string {
    return `{"sku":"SKU-${n % this.cfg.skus}","userId":"${this.cfg.userPrefix}${n}","quantity":1,"priceCents":1999}`;
  }

  /** Opens the initial connections; resolves with how many connected. */
  async warmConnections(): Promise<number> {
    if (this.pool !== null) return 0; // undici connects on demand
    const want = Math.min(this.cfg.initialConnections, this.cfg.maxConnections);
    for (let i = 0; i < want; i++) this.open();
    const deadline = performance.now() + 5000;
    while (performance.now() < deadline) {
      let up = 0;
      for (const c of this.conns) if (c.connected) up++;
      if (up >= want || this.conns.size < want) return up;
      await new Promise((r) => setTimeout(r, 10));
    }
    return [...this.conns].filter((c) => c.connected).length;
  }

  run(cmd: StepCommand): Promise<StepStats> {
    if (this.step !== null) return Promise.reject(new Error('a step is already running'));
    return new Promise((resolve) => {
      const t0 = performance.now() + 1;
      const total = Math.ceil((cmd.rate * (cmd.warmupMs + cmd.durationMs)) / 1000);
      this.step = {
        cmd,
        t0,
        total,
        issued: 0,
        finished: 0,
        windowStart: t0 + cmd.warmupMs,
        windowEnd: t0 + cmd.warmupMs + cmd.durationMs,
        markStartAt: Number.NaN,
        markEndAt: Number.NaN,
        scheduleDone: false,
        latency: new Histogram(),
        dispatchLag: new Histogram(),
        sendDelay: new Histogram(),
        ok: 0,
        okCompletedInWindow: 0,
        errors: { total: 0, byStatus: {}, socket: 0, timeout: 0, protocol: 0 },
        opened: 0,
        peakConnections: this.conns.size,
        peakQueued: 0,
        timer: undefined,
        sweep: setInterval(() => this.sweep(), SWEEP_MS),
        done: resolve,
      };
      this.step.timer = setTimeout(() => this.tick(), 1);
    });
  }

  close(): void {
    for (const c of this.conns) c.socket.destroy();
    void this.pool?.destroy();
  }

  // ---- schedule ----

  private tick(): void {
    const s = this.step;
    if (s === null) return;
    const now = performance.now();
    if (Number.isNaN(s.markStartAt) && now >= s.windowStart) {
      s.markStartAt = now;
      this.onMark(s.cmd.id, 'start');
    }
    const due = Math.min(s.total, Math.floor(((now - s.t0) * s.cmd.rate) / 1000) + 1);
    while (s.issued < due) {
      const sched = s.t0 + (s.issued * 1000) / s.cmd.rate;
      s.issued++;
      this.dispatch({ seq: this.seq++, sched, inWindow: sched >= s.windowStart && sched < s.windowEnd }, now);
    }
    if (Number.isNaN(s.markEndAt) && now >= s.windowEnd) {
      s.markEndAt = now;
      this.onMark(s.cmd.id, 'end');
    }
    if (s.issued < s.total || Number.isNaN(s.markEndAt)) {
      const nextDue = s.issued < s.total ? s.t0 + (s.issued * 1000) / s.cmd.rate : s.windowEnd;
      const nextMark = Number.isNaN(s.markStartAt) ? s.windowStart : s.windowEnd;
      // Node timers have 1 ms granularity: above ~1,000/s each tick sends the requests that
      // came due since the last one, each still timed from its own exact scheduled instant.
      s.timer = setTimeout(() => this.tick(), Math.max(1, Math.floor(Math.min(nextDue, nextMark) - performance.now())));
    } else {
      s.scheduleDone = true;
      this.maybeDone();
    }
  }

  private dispatch(r: Pending, now: number): void {
    const s = this.step;
    if (s !== null && r.inWindow) s.dispatchLag.recordMs(now - r.sched);
    if (this.pool !== null) {
      this.dispatchUndici(this.pool, r);
      return;
    }
    while (this.idle.length > 0) {
      const c = this.idle.pop() as Connection;
      if (c.closed) continue;
      if (now - c.lastUsed > IDLE_REUSE_MAX_MS) {
        this.discard(c);
        continue;
      }
      this.send(c, r, now);
      return;
    }
    this.queue.push(r);
    if (s !== null && this.queue.length > s.peakQueued) s.peakQueued = this.queue.length;
    if (this.conns.size < this.cfg.maxConnections) this.open();
  }

  private send(c: Connection, r: Pending, now: number): void {
    c.current = r;
    if (this.step !== null && r.inWindow) this.step.sendDelay.recordMs(now - r.sched);
    const n = r.seq;
    const body = this.body(n);
    const idem = this.cfg.idempotencyKeys ? `Idempotency-Key: ${this.cfg.userPrefix}k${n}\r\n` : '';
    c.socket.write(`${this.requestHead}Content-Length: ${body.length}\r\n${idem}\r\n${body}`, 'latin1');
  }

  /** undici: the Pool queues when every connection is busy; latency still runs from `sched`. */
  private dispatchUndici(pool: Pool, r: Pending): void {
    this.undiciInFlight.add(r);
    const s = this.step;
    if (s !== null) {
      const st = pool.stats;
      if (st.connected > s.peakConnections) s.peakConnections = st.connected;
      if (st.pending > s.peakQueued) s.peakQueued = st.pending;
    }
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.cfg.idempotencyKeys) headers['idempotency-key'] = `${this.cfg.userPrefix}k${r.seq}`;
    pool.request({ path: this.cfg.path, method: 'POST', headers, body: this.body(r.seq) }).then(
      async (res) => {
        await res.body.dump();
        if (r.done) return;
        r.done = true;
        this.undiciInFlight.delete(r);
        this.complete(r, res.statusCode, performance.now());
        this.maybeDone();
      },
      () => {
        if (r.done) return;
        r.done = true;
        this.undiciInFlight.delete(r);
        this.fail(r, 'socket');
        this.maybeDone();
      },
    );
  }

  // ---- connections ----

  private open(): void {
    const socket = net.connect({ host: this.cfg.host, port: this.cfg.port });
    socket.setNoDelay(true);
    const c = new Connection(socket);
    this.conns.add(c);
    if (this.step !== null) {
      this.step.opened++;
      if (this.conns.size > this.step.peakConnections) this.step.peakConnections = this.conns.size;
    }
    socket.once('connect', () => {
      c.connected = true;
      this.release(c, performance.now());
    });
    socket.on('data', (chunk: Buffer) => this.onData(c, chunk));
    socket.on('error', () => undefined); // 'close' follows and accounts for the request
    socket.once('close', () => this.onClose(c));
  }

  private discard(c: Connection): void {
    c.closed = true;
    this.conns.delete(c);
    c.socket.destroy();
  }

  private onClose(c: Connection): void {
    const wasOpen = !c.closed;
    c.closed = true;
    this.conns.delete(c);
    if (c.current !== null) {
      const r = c.current;
      c.current = null;
      this.fail(r, 'socket');
    }
    // Replace a connection the server dropped if requests are waiting; one that never
    // connected is not retried in a loop (the queued requests time out instead).
    if (wasOpen && c.connected && this.queue.length > 0 && this.conns.size < this.cfg.maxConnections) this.open();
    this.maybeDone();
  }

  /** A connection is free: give it the oldest waiting request, or park it. */
  private release(c: Connection, now: number): void {
    c.lastUsed = now;
    const s = this.step;
    while (this.queue.length > 0) {
      const r = this.queue.shift() as Pending;
      if (now - r.sched > this.cfg.timeoutMs) {
        this.fail(r, 'timeout');
        continue;
      }
      this.send(c, r, now);
      return;
    }
    this.idle.push(c);
    if (s !== null) this.maybeDone();
  }

  // ---- responses ----

  private onData(c: Connection, chunk: Buffer): void {
    const data = c.buf === null ? chunk : Buffer.concat([c.buf, chunk]); // fragmented answers only
    c.buf = null;
    const r = c.current;
    if (r === null) {
      this.protocolError(c, null);
      return;
    }
    const headEnd = data.indexOf(HEADER_END);
    if (headEnd < 0) {
      c.buf = data;
      return;
    }
    // "HTTP/1.1 202 ..."
    if (data[0] !== 0x48 || data[8] !== 0x20) {
      this.protocolError(c, r);
      return;
    }
    const status = (data[9] - 48) * 100 + (data[10] - 48) * 10 + (data[11] - 48);
    const head = data.toString('latin1', 0, headEnd).toLowerCase();
    let end: number;
    const cl = head.indexOf('\r\ncontent-length:');
    if (cl >= 0) {
      const eol = head.indexOf('\r\n', cl + 2);
      end = headEnd + 4 + Number(head.slice(cl + 17, eol < 0 ? undefined : eol).trim());
    } else if (head.includes('\r\ntransfer-encoding: chunked')) {
      end = chunkedEnd(data, headEnd + 4);
      if (end === -2) {
        this.protocolError(c, r);
        return;
      }
    } else if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
      end = headEnd + 4;
    } else {
      this.protocolError(c, r); // a body delimited by close: not expected from these servers
      return;
    }
    if (!Number.isFinite(end)) {
      this.protocolError(c, r);
      return;
    }
    if (end === -1 || data.length < end) {
      c.buf = data;
      return;
    }
    if (data.length > end) {
      this.protocolError(c, r); // bytes nobody asked for (pipelining is never used)
      return;
    }
    c.current = null;
    const now = performance.now();
    this.complete(r, status, now);
    if (head.includes('\r\nconnection: close')) this.discard(c);
    else this.release(c, now);
  }

  private protocolError(c: Connection, r: Pending | null): void {
    c.current = null;
    if (r !== null) this.fail(r, 'protocol');
    else if (this.step !== null) {
      this.step.errors.protocol++;
      this.step.errors.total++;
    }
    this.discard(c);
    this.maybeDone();
  }

  private complete(r: Pending, status: number, now: number): void {
    const s = this.step;
    if (s === null) return;
    s.finished++;
    if (status !== this.cfg.okStatus) {
      s.errors.total++;
      s.errors.byStatus[status] = (s.errors.byStatus[status] ?? 0) + 1;
      return;
    }
    if (r.inWindow) {
      s.ok++;
      s.latency.recordMs(now - r.sched);
    }
    if (now >= s.markStartAt && (Number.isNaN(s.markEndAt) || now < s.markEndAt)) s.okCompletedInWindow++;
  }

  private fail(_r: Pending, kind: 'socket' | 'timeout' | 'protocol'): void {
    const s = this.step;
    if (s === null) return;
    s.finished++;
    s.errors.total++;
    s.errors[kind]++;
  }

  /** Times out requests waiting too long, in the queue or on a connection (which is then dropped). */
  private sweep(): void {
    const now = performance.now();
    for (;;) {
      const head = this.queue.peek();
      if (head === undefined || now - head.sched <= this.cfg.timeoutMs) break;
      this.queue.shift();
      this.fail(head, 'timeout');
    }
    for (const r of this.undiciInFlight) {
      if (now - r.sched <= this.cfg.timeoutMs) continue;
      r.done = true;
      this.undiciInFlight.delete(r);
      this.fail(r, 'timeout');
    }
    for (const c of this.conns) {
      if (c.current !== null && now - c.current.sched > this.cfg.timeoutMs) {
        const r = c.current;
        c.current = null;
        this.fail(r, 'timeout');
        this.discard(c);
      }
    }
    this.maybeDone();
  }

  private maybeDone(): void {
    const s = this.step;
    if (s === null || !s.scheduleDone || s.finished < s.issued) return;
    clearInterval(s.sweep);
    clearTimeout(s.timer);
    this.step = null;
    this.idle = this.idle.filter((c) => !c.closed);
    s.done({
      id: s.cmd.id,
      rate: s.cmd.rate,
      scheduled: s.issued,
      scheduledInWindow: Math.ceil((s.cmd.rate * s.cmd.durationMs) / 1000),
      ok: s.ok,
      okCompletedInWindow: s.okCompletedInWindow,
      windowMs: s.markEndAt - s.markStartAt,
      errors: s.errors,
      latency: s.latency.summary(),
      dispatchLag: s.dispatchLag.summary(),
      sendDelay: s.sendDelay.summary(),
      connectionsOpened: s.opened,
      peakConnections: s.peakConnections,
      peakQueued: s.peakQueued,
    });
  }
}

/**
 * End offset of a chunked body starting at `from`: -1 = incomplete, -2 = malformed.
 * Trailers are skipped up to the blank line.
 */
function chunkedEnd(data: Buffer, from: number): number {
  let pos = from;
  for (;;) {
    const eol = data.indexOf('\r\n', pos, 'latin1');
    if (eol < 0) return -1;
    const size = parseInt(data.toString('latin1', pos, eol).split(';')[0], 16);
    if (!Number.isFinite(size) || size < 0) return -2;
    pos = eol + 2;
    if (size === 0) {
      if (data.length < pos + 2) return -1;
      if (data[pos] === 0x0d && data[pos + 1] === 0x0a) return pos + 2;
      const blank = data.indexOf(HEADER_END, pos);
      return blank < 0 ? -1 : blank + 4;
    }
    pos += size + 2;
    if (pos > data.length) return -1;
  }
}
