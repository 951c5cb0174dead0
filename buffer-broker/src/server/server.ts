/**
 * Kafka TCP listener: size-prefixed framing, request dispatch, and responses written in
 * request order per connection (Kafka's ordering guarantee; idempotent producers with several
 * requests in flight depend on it). Handlers start as soon as a frame is complete, so
 * pipelined produce requests share one group commit, but their answers go out in order.
 *
 * Bad input (garbage, oversized or truncated frames, unknown APIs or versions) closes that
 * client's connection only. Nothing a client sends can throw out of this module.
 *
 * Hostile clients are bounded: a frame that has started arriving must complete within
 * requestReadTimeoutMs (slowloris), and partly received frames share one memory budget
 * (maxBufferedRequestBytes): a connection whose next frame does not fit stops being read until
 * memory is released, so many large half-sent frames cannot exhaust memory.
 *
 * SASL (when ctx.sasl is set) is connection state, so it lives here rather than in handlers/:
 * before authenticating, a connection may send only ApiVersions, SaslHandshake and
 * SaslAuthenticate, as in Kafka's SaslServerAuthenticator; anything else closes it.
 */
import net from 'node:net';
import { ErrorCode } from '../protocol/error-codes.ts';
import { readRequestHeaderPrefix, readRequestHeaderRest } from '../protocol/header.ts';
import { ProtocolDecodeError, Reader } from '../protocol/reader.ts';
import { bufferPool } from '../storage/buffer-pool.ts';
import { readIntoUserBuffer, type UserRead } from './user-read.ts';
import { Writer } from '../protocol/writer.ts';
import { encodeApiVersionsResponse } from '../protocol/apis/api-versions.ts';
import { decodeSaslAuthenticateRequest, encodeSaslAuthenticateResponse } from '../protocol/apis/sasl-authenticate.ts';
import { decodeSaslHandshakeRequest, encodeSaslHandshakeResponse } from '../protocol/apis/sasl-handshake.ts';
import type { BrokerContext } from '../handlers/context.ts';
import { advertisedVersions, lookupApi, saslApis } from '../handlers/registry.ts';
import { PLAIN } from './sasl-plain.ts';

/** Pause reading a connection with this many unanswered requests (producer backpressure). */
const MAX_QUEUED_PER_CONNECTION = 128;
/** ...or with this many bytes waiting in the socket's write buffer (slow consumers). */
const MAX_WRITE_BUFFER = 64 * 1024 * 1024;
/** Largest frame accepted before authentication (Kafka's sasl.server.max.receive.size default). */
const MAX_UNAUTHENTICATED_FRAME = 512 * 1024;
const EMPTY = Buffer.alloc(0);

interface Slot {
  done: boolean;
  chunks: Buffer[] | null;
  /** Writer.afterSend hooks: run once the chunks are written (or at once when there are none). */
  sent?: (() => void)[];
  /** Close the connection once this answer is written (failed authentication). */
  closeAfter?: boolean;
}

/**
 * SASL progress of one connection. open: no SASL, or authenticated. handshake: may send
 * ApiVersions or SaslHandshake. authenticate: after SaslHandshake v1, expects SaslAuthenticate.
 * rawToken: after SaslHandshake v0, the next frame is a bare SASL token without a request header.
 */
type AuthState = 'open' | 'handshake' | 'authenticate' | 'rawToken';

/**
 * Memory for partly received frames, shared by all connections. A connection reserves its
 * frame's declared size when the frame does not arrive whole; frames that arrive whole in one
 * read need nothing. Waiters are retried in arrival order whenever memory is released.
 */
class RequestMemory {
  private used = 0;
  private readonly waiting = new Set<Connection>();

  constructor(
    readonly limit: number,
    private readonly onChange: (used: number) => void,
  ) {}

  tryReserve(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    this.onChange(this.used);
    return true;
  }

  release(n: number): void {
    this.used -= n;
    this.onChange(this.used);
    for (const c of this.waiting) {
      if (this.used >= this.limit) break;
      if (c.retryReserve()) this.waiting.delete(c);
    }
  }

  wait(c: Connection): void {
    this.waiting.add(c);
  }

  cancel(c: Connection): void {
    this.waiting.delete(c);
  }
}

/** Bytes one socket read takes at most (Node's own read size). */
const READ_BUFFER_BYTES = 64 * 1024;

class Connection {
  /** Reads into a reused buffer (user-read.ts), or null: 'data' events. */
  private readonly userRead: UserRead | null;
  /** processInput is running: a nested call (a handler answered synchronously and resumed reading) leaves the rest to it. */
  private processing = false;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private queue: Slot[] = [];
  private paused = false;
  private closed = false;
  /** An answer that closes the connection is queued: read nothing more. */
  private closing = false;
  private draining: (() => void) | null = null;
  private readonly clientHost: string;
  private auth: AuthState;
  /** Bytes reserved in RequestMemory for the frame being received. */
  private reserved = 0;
  private waitingMemory = false;
  /** performance.now() when the current incomplete frame started arriving, or 0. */
  partialSince = 0;

  constructor(
    private readonly socket: net.Socket,
    private readonly ctx: BrokerContext,
    private readonly memory: RequestMemory,
  ) {
    this.auth = ctx.sasl === null ? 'open' : 'handshake';
    this.clientHost = `/${socket.remoteAddress ?? 'unknown'}`;
    socket.setNoDelay(true);
    if (ctx.config.idleTimeoutMs > 0) {
      socket.setTimeout(ctx.config.idleTimeoutMs, () => socket.destroy());
    }
    // Reads land in one buffer per connection and are copied into pooled chunks (see
    // user-read.ts for why); where Node lacks the mechanism, 'data' events as usual.
    this.userRead = readIntoUserBuffer(socket, Buffer.allocUnsafe(READ_BUFFER_BYTES), (n, buf) => {
      const chunk = bufferPool.acquire(n);
      buf.copy(chunk, 0, 0, n);
      this.onData(chunk);
      return !this.paused;
    });
    if (this.userRead === null) socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.maybeResume());
    socket.on('error', () => undefined); // ECONNRESET and friends: the close handler cleans up
    socket.on('close', () => {
      this.closed = true;
      this.dropInput();
      this.draining?.();
    });
  }

  /** Forgets buffered input and gives its memory back. */
  private dropInput(): void {
    this.chunks = [];
    this.buffered = 0;
    this.partialSince = 0;
    this.releaseMemory();
    if (this.waitingMemory) {
      this.waitingMemory = false;
      this.memory.cancel(this);
    }
  }

  private releaseMemory(): void {
    if (this.reserved > 0) {
      const n = this.reserved;
      this.reserved = 0;
      this.memory.release(n);
    }
  }

  private fail(reason: string, detail?: unknown): void {
    if (this.closed) return;
    this.ctx.metrics.protocolErrors.inc({ reason });
    this.ctx.log.warn({ reason, detail: detail instanceof Error ? detail.message : detail, remote: this.socket.remoteAddress }, 'closing connection after bad input');
    this.closed = true;
    this.dropInput();
    this.socket.destroy();
  }

  /** Closes the connection without an answer for an authentication failure. */
  private refuse(reason: string, detail: Record<string, unknown>): void {
    if (this.closed) return;
    this.ctx.metrics.authFailures.inc({ reason });
    this.ctx.log.warn({ reason, ...detail, remote: this.socket.remoteAddress }, 'closing unauthenticated connection');
    this.closed = true;
    this.dropInput();
    this.socket.destroy();
  }

  /** Called by the server's sweep: closes a connection whose frame has been arriving too long. */
  checkPartial(now: number, timeoutMs: number): void {
    if (this.partialSince > 0 && !this.paused && now - this.partialSince > timeoutMs) {
      this.fail('request_timeout', `frame incomplete after ${timeoutMs} ms (${this.buffered} bytes received)`);
    }
  }

  private onData(chunk: Buffer): void {
    if (this.closed || this.closing) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    // Reads into the user buffer stop at the end of the read that finds the connection paused,
    // so one read may land while paused: it waits here until maybeResume().
    if (!this.paused) this.processInput();
  }

  private processInput(): void {
    if (this.processing) return;
    this.processing = true;
    try {
      this.processFrames();
    } finally {
      this.processing = false;
    }
  }

  private processFrames(): void {
    while (!this.closed && !this.closing && this.buffered >= 4) {
      const size = this.peekSize();
      const max = this.auth === 'open' ? this.ctx.config.maxRequestBytes : MAX_UNAUTHENTICATED_FRAME;
      if (size < 0 || size > max || 4 + size > this.memory.limit) return this.fail('frame_size', size);
      if (this.buffered < 4 + size) {
        if (this.reserved === 0 && !this.memory.tryReserve(4 + size)) {
          // Wait (unread, so the kernel holds the rest) until other frames release memory.
          this.waitingMemory = true;
          this.memory.wait(this);
          this.pause();
          this.partialSince = 0;
          return;
        }
        this.reserved = 4 + size;
        break;
      }
      const frame = this.take(4 + size).subarray(4);
      this.releaseMemory();
      this.partialSince = 0;
      this.dispatch(frame);
    }
    if (this.buffered === 0 || this.closed) this.partialSince = 0;
    else if (this.partialSince === 0) this.partialSince = performance.now();
  }

  /** RequestMemory calls this when memory was released; true once the waiting frame has its memory. */
  retryReserve(): boolean {
    if (this.closed || !this.waitingMemory) return true;
    const need = 4 + this.peekSize();
    if (!this.memory.tryReserve(need)) return false;
    this.reserved = need;
    this.waitingMemory = false;
    this.partialSince = performance.now();
    this.maybeResume();
    return true;
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
    if (first.length >= n && this.userRead === null) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    // A frame gets a buffer of its own (pooled when large; see dispatch) when it spans socket
    // reads, and always when reads land in pooled copies, which go back to the pool once consumed.
    const out = bufferPool.acquire(n);
    let got = 0;
    while (got < n) {
      const c = this.chunks[0];
      const k = Math.min(n - got, c.length);
      c.copy(out, got, 0, k);
      got += k;
      if (k === c.length) {
        this.chunks.shift();
        if (this.userRead !== null) bufferPool.release(c);
      } else this.chunks[0] = c.subarray(k);
    }
    return out;
  }

  private dispatch(frame: Buffer): void {
    if (this.auth === 'rawToken') return this.onRawSaslToken(frame);
    const r = new Reader(frame);
    let apiKey: number;
    let apiVersion: number;
    let correlationId: number;
    try {
      ({ apiKey, apiVersion, correlationId } = readRequestHeaderPrefix(r));
    } catch (err) {
      return this.fail('header', err);
    }
    if (this.ctx.sasl !== null && (this.auth !== 'open' || apiKey === 17 || apiKey === 36)) {
      if (this.dispatchSasl(apiKey, apiVersion, correlationId, r)) return;
    }
    const api = lookupApi(apiKey);
    if (!api) return this.fail('unknown_api', apiKey);
    if (apiVersion < api.minVersion || apiVersion > api.maxVersion) {
      if (apiKey === 18) {
        // KIP-511: answer in the v0 layout so the client can retry with a version we have.
        const w = new Writer(64);
        encodeApiVersionsResponse(w, 0, ErrorCode.UNSUPPORTED_VERSION, advertisedVersions(this.ctx.sasl !== null).filter((a) => a.apiKey === 18));
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
      // A produce handler resolves once every batch of the frame is written to the log (or
      // refused), and nothing keeps a reference to it after that, so its buffer can be reused.
      // Other APIs may keep parts of their frame (group member metadata, assignments): not theirs.
      if (apiKey === 0) w.afterSend(() => bufferPool.release(frame));
      if (w.sentHooks.length > 0) slot.sent = w.sentHooks;
      slot.done = true;
      this.flush();
    };
    if (typeof result === 'boolean') finish(result);
    else result.then(finish, (err: unknown) => this.handlerFailed(api.name, err));
  }

  /**
   * SASL requests, and every request before authentication. Returns false to let the request
   * through (ApiVersions before the handshake), true when it was answered or refused here.
   * Mirrors Kafka's SaslServerAuthenticator and KafkaApis:
   * - before the handshake: ApiVersions and SaslHandshake only; anything else (SaslAuthenticate
   *   included) closes the connection without an answer;
   * - during authentication: SaslHandshake (and ApiVersions) get ILLEGAL_SASL_STATE and the
   *   connection closes; other requests close it without an answer;
   * - after authentication: SaslHandshake and SaslAuthenticate get ILLEGAL_SASL_STATE and the
   *   connection stays open.
   */
  private dispatchSasl(apiKey: number, apiVersion: number, correlationId: number, r: Reader): boolean {
    if (apiKey === 18 && this.auth === 'handshake') return false;
    const def = saslApis.find((a) => a.key === apiKey);
    if (def === undefined) {
      if (apiKey === 18 && apiVersion >= 0 && apiVersion <= 2) {
        const w = new Writer(16);
        encodeApiVersionsResponse(w, apiVersion, ErrorCode.ILLEGAL_SASL_STATE, []);
        this.ctx.metrics.authFailures.inc({ reason: 'illegal_state' });
        this.enqueueDone(this.frameResponse(correlationId, false, w), true);
        return true;
      }
      this.refuse(this.auth === 'handshake' ? 'unauthenticated_request' : 'illegal_state', { apiKey, state: this.auth });
      return true;
    }
    if (apiVersion < def.minVersion || apiVersion > def.maxVersion) {
      this.fail('unsupported_version', `${def.name} v${apiVersion}`);
      return true;
    }
    const w = new Writer(64);
    try {
      readRequestHeaderRest(r, false);
      if (apiKey === 17) this.onSaslHandshake(apiVersion, correlationId, r, w);
      else this.onSaslAuthenticate(apiVersion, correlationId, r, w);
    } catch (err) {
      this.handlerFailed(def.name, err);
    }
    return true;
  }

  private onSaslHandshake(version: number, correlationId: number, r: Reader, w: Writer): void {
    const { mechanism } = decodeSaslHandshakeRequest(r);
    this.ctx.metrics.requests.inc({ api: 'SaslHandshake', outcome: 'ok' });
    let errorCode: number = ErrorCode.NONE;
    let close = false;
    if (this.auth === 'open') {
      errorCode = ErrorCode.ILLEGAL_SASL_STATE;
    } else if (this.auth !== 'handshake') {
      errorCode = ErrorCode.ILLEGAL_SASL_STATE;
      close = true;
      this.ctx.metrics.authFailures.inc({ reason: 'illegal_state' });
    } else if (mechanism !== PLAIN) {
      errorCode = ErrorCode.UNSUPPORTED_SASL_MECHANISM;
      close = true;
      this.ctx.metrics.authFailures.inc({ reason: 'unsupported_mechanism' });
      this.ctx.log.warn({ mechanism: mechanism.slice(0, 64), remote: this.socket.remoteAddress }, 'unsupported SASL mechanism; closing connection');
    } else {
      this.auth = version === 0 ? 'rawToken' : 'authenticate';
    }
    encodeSaslHandshakeResponse(w, { errorCode, mechanisms: [PLAIN] });
    this.enqueueDone(this.frameResponse(correlationId, false, w), close);
  }

  private onSaslAuthenticate(version: number, correlationId: number, r: Reader, w: Writer): void {
    const { authBytes } = decodeSaslAuthenticateRequest(r);
    this.ctx.metrics.requests.inc({ api: 'SaslAuthenticate', outcome: 'ok' });
    const answer = (errorCode: number, errorMessage: string | null, close: boolean) => {
      encodeSaslAuthenticateResponse(w, version, { errorCode, errorMessage, authBytes: EMPTY, sessionLifetimeMs: 0 });
      this.enqueueDone(this.frameResponse(correlationId, false, w), close);
    };
    if (this.auth === 'open') return answer(ErrorCode.ILLEGAL_SASL_STATE, 'SaslAuthenticate request received after successful authentication', false);
    if (this.auth !== 'authenticate') return this.refuse('illegal_state', { apiKey: 36, state: this.auth });
    const result = (this.ctx.sasl as NonNullable<BrokerContext['sasl']>).verify(authBytes);
    if (result.ok) {
      this.authenticated(result.user);
      return answer(ErrorCode.NONE, null, false);
    }
    this.ctx.metrics.authFailures.inc({ reason: result.reason });
    this.ctx.log.warn({ reason: result.reason, user: result.user?.slice(0, 256), remote: this.socket.remoteAddress }, 'SASL authentication failed; closing connection');
    answer(ErrorCode.SASL_AUTHENTICATION_FAILED, result.message, true);
  }

  /** After SaslHandshake v0: the frame is the bare PLAIN token; success is answered with an empty token, failure closes. */
  private onRawSaslToken(token: Buffer): void {
    const result = (this.ctx.sasl as NonNullable<BrokerContext['sasl']>).verify(token);
    if (!result.ok) return this.refuse(result.reason, { user: result.user?.slice(0, 256), handshake: 'v0' });
    this.authenticated(result.user);
    const empty = Buffer.alloc(4);
    this.enqueueDone([empty]);
  }

  private authenticated(user: string): void {
    this.auth = 'open';
    this.ctx.metrics.authSuccesses.inc();
    this.ctx.log.debug({ user, remote: this.socket.remoteAddress }, 'SASL authenticated');
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

  private enqueueDone(chunks: Buffer[], closeAfter = false): void {
    this.queue.push({ done: true, chunks, closeAfter });
    if (closeAfter) {
      this.closing = true;
      this.dropInput();
      this.pause();
    }
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
      if (slot.chunks === null) {
        if (slot.sent) runHooks(slot.sent);
        continue;
      }
      if (!corked) {
        this.socket.cork();
        corked = true;
      }
      const last = slot.chunks.length - 1;
      for (let i = 0; i < last; i++) this.socket.write(slot.chunks[i]);
      const sent = slot.sent;
      // The callback of the last chunk runs once every chunk of the response is with the kernel.
      if (sent)
        this.socket.write(slot.chunks[last], (err) => {
          if (!err) runHooks(sent);
        });
      else this.socket.write(slot.chunks[last]);
      if (slot.closeAfter) {
        this.socket.uncork();
        this.closed = true;
        this.queue = [];
        this.socket.end();
        setTimeout(() => this.socket.destroy(), 1000).unref();
        return;
      }
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
    if (this.paused && !this.waitingMemory && !this.closing && this.queue.length < MAX_QUEUED_PER_CONNECTION / 2 && this.draining === null) {
      this.paused = false;
      // The frame being received gets the full timeout again: the pause was not the client's doing.
      if (this.partialSince > 0) this.partialSince = performance.now();
      // Frames that arrived while paused first (they may pause again).
      this.processInput();
      if (this.paused || this.closed) return;
      if (this.userRead) this.userRead.resume();
      else this.socket.resume();
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
  private readonly memory: RequestMemory;
  private sweep: NodeJS.Timeout | null = null;

  constructor(private readonly ctx: BrokerContext) {
    this.memory = new RequestMemory(ctx.config.maxBufferedRequestBytes, (used) => ctx.metrics.bufferedRequestBytes.set(used));
    const timeout = ctx.config.requestReadTimeoutMs;
    if (timeout > 0) {
      // One timer for all connections (none per request): closes frames that arrive too slowly.
      this.sweep = setInterval(() => {
        const now = performance.now();
        for (const c of this.connections) c.checkPartial(now, timeout);
      }, Math.max(50, Math.min(1000, Math.floor(timeout / 4))));
      this.sweep.unref();
    }
    this.server = net.createServer((socket) => {
      const conn = new Connection(socket, ctx, this.memory);
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
    if (this.sweep !== null) clearInterval(this.sweep);
    await Promise.all([
      new Promise<void>((resolve) => this.server.close(() => resolve())),
      ...[...this.connections].map((c) => c.drainAndClose(timeoutMs)),
    ]);
  }
}

function runHooks(hooks: (() => void)[]): void {
  for (const h of hooks) h();
}
