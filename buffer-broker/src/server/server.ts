/**
 * Kafka TCP listener: size-prefixed framing, request dispatch, and responses written in
 * request order per connection (Kafka's ordering guarantee; idempotent producers with several
 * requests in flight depend on it). Handlers start as soon as a frame is complete, so
 * pipelined produce requests share one group commit, but their answers go out in order.
 *
 * Bad input (garbage, oversized or truncated frames, unknown APIs or versions) closes that
 * client's connection only. Nothing a client sends can throw out of this module.
 */
import net from 'node:net';
import { ErrorCode } from '../protocol/error-codes.ts';
import { readRequestHeaderPrefix, readRequestHeaderRest } from '../protocol/header.ts';
import { ProtocolDecodeError, Reader } from '../protocol/reader.ts';
import { Writer } from '../protocol/writer.ts';
import { encodeApiVersionsResponse } from '../protocol/apis/api-versions.ts';
import type { BrokerContext } from '../handlers/context.ts';
import { advertisedVersions, lookupApi } from '../handlers/registry.ts';

/** Pause reading a connection with this many unanswered requests (producer backpressure). */
const MAX_QUEUED_PER_CONNECTION = 128;
/** ...or with this many bytes waiting in the socket's write buffer (slow consumers). */
const MAX_WRITE_BUFFER = 64 * 1024 * 1024;

interface Slot {
  done: boolean;
  chunks: Buffer[] | null;
}

class Connection {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private queue: Slot[] = [];
  private paused = false;
  private closed = false;
  private draining: (() => void) | null = null;
  private readonly clientHost: string;

  constructor(
    private readonly socket: net.Socket,
    private readonly ctx: BrokerContext,
  ) {
    this.clientHost = `/${socket.remoteAddress ?? 'unknown'}`;
    socket.setNoDelay(true);
    if (ctx.config.idleTimeoutMs > 0) {
      socket.setTimeout(ctx.config.idleTimeoutMs, () => socket.destroy());
    }
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.maybeResume());
    socket.on('error', () => undefined); // ECONNRESET and friends: the close handler cleans up
    socket.on('close', () => {
      this.closed = true;
      this.draining?.();
    });
  }

  private fail(reason: string, detail?: unknown): void {
    if (this.closed) return;
    this.ctx.metrics.protocolErrors.inc({ reason });
    this.ctx.log.warn({ reason, detail: detail instanceof Error ? detail.message : detail, remote: this.socket.remoteAddress }, 'closing connection after bad input');
    this.closed = true;
    this.chunks = [];
    this.buffered = 0;
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (!this.closed && this.buffered >= 4) {
      const size = this.peekSize();
      if (size < 0 || size > this.ctx.config.maxRequestBytes) return this.fail('frame_size', size);
      if (this.buffered < 4 + size) return;
      const frame = this.take(4 + size).subarray(4);
      this.dispatch(frame);
    }
  }

  private peekSize(): number {
    const first = this.chunks[0];
    if (first.length >= 4) return first.readInt32BE(0);
    const head = Buffer.allocUnsafe(4);
    let n = 0;
    for (const c of this.chunks) {
      const k = Math.min(4 - n, c.length);
      c.copy(head, n, 0, k);
      n += k;
      if (n === 4) break;
    }
    return head.readInt32BE(0);
  }

  /** Removes `n` bytes from the front of the buffered chunks, copying only when a frame spans chunks. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0];
      const k = Math.min(n - got, c.length);
      c.copy(out, got, 0, k);
      got += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }

  private dispatch(frame: Buffer): void {
    const r = new Reader(frame);
    let apiKey: number;
    let apiVersion: number;
    let correlationId: number;
    try {
      ({ apiKey, apiVersion, correlationId } = readRequestHeaderPrefix(r));
    } catch (err) {
      return this.fail('header', err);
    }
    const api = lookupApi(apiKey);
    if (!api) return this.fail('unknown_api', apiKey);
    if (apiVersion < api.minVersion || apiVersion > api.maxVersion) {
      if (apiKey === 18) {
        // KIP-511: answer in the v0 layout so the client can retry with a version we have.
        const w = new Writer(64);
        encodeApiVersionsResponse(w, 0, ErrorCode.UNSUPPORTED_VERSION, advertisedVersions().filter((a) => a.apiKey === 18));
        this.enqueueDone(this.frameResponse(correlationId, false, w));
        return;
      }
      return this.fail('unsupported_version', `${api.name} v${apiVersion}`);
    }
    const flexible = apiVersion >= api.flexibleFrom;
    let clientId: string | null;
    try {
      clientId = readRequestHeaderRest(r, flexible);
    } catch (err) {
      return this.fail('header', err);
    }
    const slot: Slot = { done: false, chunks: null };
    this.queue.push(slot);
    if (this.queue.length >= MAX_QUEUED_PER_CONNECTION) this.pause();
    const started = performance.now();
    const w = new Writer();
    let result: Promise<boolean> | boolean;
    try {
      result = api.handle(this.ctx, apiVersion, r, w, { clientId: clientId ?? '', clientHost: this.clientHost });
    } catch (err) {
      return this.handlerFailed(api.name, err);
    }
    const finish = (respond: boolean) => {
      this.ctx.metrics.requests.inc({ api: api.name, outcome: 'ok' });
      this.ctx.metrics.requestDuration.observe({ api: api.name }, (performance.now() - started) / 1000);
      // ApiVersions always uses response header v0.
      slot.chunks = respond ? this.frameResponse(correlationId, flexible && apiKey !== 18, w) : null;
      slot.done = true;
      this.flush();
    };
    if (typeof result === 'boolean') finish(result);
    else result.then(finish, (err: unknown) => this.handlerFailed(api.name, err));
  }

  private handlerFailed(api: string, err: unknown): void {
    this.ctx.metrics.requests.inc({ api, outcome: 'error' });
    if (err instanceof ProtocolDecodeError) return this.fail('decode', `${api}: ${err.message}`);
    this.ctx.log.error({ err, api }, 'request failed; closing connection');
    this.fail('internal', err);
  }

  private frameResponse(correlationId: number, flexibleHeader: boolean, body: Writer): Buffer[] {
    const bodyChunks = body.finish();
    const head = Buffer.allocUnsafe(flexibleHeader ? 9 : 8);
    head.writeInt32BE(body.length + head.length - 4, 0);
    head.writeInt32BE(correlationId, 4);
    if (flexibleHeader) head[8] = 0;
    return [head, ...bodyChunks];
  }

  private enqueueDone(chunks: Buffer[]): void {
    this.queue.push({ done: true, chunks });
    this.flush();
  }

  /** Writes every finished response at the head of the queue, in request order. */
  private flush(): void {
    if (this.closed) {
      this.queue = [];
      this.draining?.();
      return;
    }
    let corked = false;
    while (this.queue.length > 0 && this.queue[0].done) {
      const slot = this.queue.shift() as Slot;
      if (slot.chunks === null) continue;
      if (!corked) {
        this.socket.cork();
        corked = true;
      }
      for (const c of slot.chunks) this.socket.write(c);
    }
    if (corked) this.socket.uncork();
    this.maybeResume();
    if (this.queue.length === 0) this.draining?.();
  }

  private pause(): void {
    if (!this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  private maybeResume(): void {
    if (this.socket.writableLength > MAX_WRITE_BUFFER) {
      this.pause();
      return;
    }
    if (this.paused && this.queue.length < MAX_QUEUED_PER_CONNECTION / 2 && this.draining === null) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /** Stops reading new requests, waits for the answers in flight, then closes. */
  async drainAndClose(timeoutMs: number): Promise<void> {
    this.socket.pause();
    this.paused = true;
    if (!this.closed && this.queue.length > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        this.draining = () => {
          if (this.queue.length === 0 || this.closed) {
            clearTimeout(t);
            resolve();
          }
        };
      });
    }
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }
}

export class KafkaServer {
  private readonly server: net.Server;
  private readonly connections = new Set<Connection>();

  constructor(private readonly ctx: BrokerContext) {
    this.server = net.createServer((socket) => {
      const conn = new Connection(socket, ctx);
      this.connections.add(conn);
      ctx.metrics.connections.inc();
      socket.on('close', () => {
        this.connections.delete(conn);
        ctx.metrics.connections.dec();
      });
    });
    this.server.maxConnections = ctx.config.maxConnections;
    this.server.on('error', (err) => ctx.log.error({ err }, 'listener error'));
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, backlog: 1024 }, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** Stops accepting connections and lets in-flight requests finish. */
  async close(timeoutMs = 10_000): Promise<void> {
    await Promise.all([
      new Promise<void>((resolve) => this.server.close(() => resolve())),
      ...[...this.connections].map((c) => c.drainAndClose(timeoutMs)),
    ]);
  }
}
