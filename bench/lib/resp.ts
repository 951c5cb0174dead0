/**
 * A minimal RESP2 client for the benchmark's Redis reference: encodes commands, writes a whole
 * pipeline with one socket write, and resolves once exactly as many replies have arrived.
 *
 * It owns one TCP connection and a FIFO of pending pipelines; replies are matched to pipelines
 * purely by order (RESP has no request ids). Bulk strings stay Buffers so 300-byte payloads are
 * never decoded to text. Not a general client: no RESP3, no pub/sub, no reconnect.
 */
import net from 'node:net';

export type RespValue = string | number | null | Buffer | RespError | RespValue[];

/** An error reply (`-ERR ...`): returned as a value, so a pipeline's other replies survive. */
export class RespError {
  readonly code = 'REDIS_ERROR_REPLY';
  constructor(readonly message: string) {}
}

/** Thrown for a reply that cannot be parsed or a connection that closed mid-pipeline. */
export class RespProtocolError extends Error {
  readonly code = 'RESP_PROTOCOL';
  readonly retriable = false;
}

const CRLF = Buffer.from('\r\n');

/** Encodes one command as a RESP array of bulk strings. */
export function encodeCommand(args: readonly (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, CRLF);
  }
  return Buffer.concat(parts);
}

/** Parses the decimal integer in buf[from, to), e.g. a length or count after the type byte. */
function parseIntAt(buf: Buffer, from: number, to: number): number {
  let i = from;
  let sign = 1;
  if (buf[i] === 0x2d) {
    sign = -1;
    i++;
  }
  let n = 0;
  for (; i < to; i++) {
    const d = buf[i] - 0x30;
    if (d < 0 || d > 9) throw new RespProtocolError(`bad integer in reply at ${i}`);
    n = n * 10 + d;
  }
  return sign * n;
}

interface Frame {
  items: RespValue[];
  remaining: number;
}

/**
 * Resumable RESP2 parser: `feed` consumes whatever complete tokens the buffer holds and keeps
 * its place (a stack of open arrays) across chunks, so a 300 KB XRANGE reply arriving in many
 * chunks is parsed once, not re-parsed from its start on every chunk.
 */
export class RespParser {
  private tail: Buffer = Buffer.alloc(0);
  private readonly stack: Frame[] = [];

  constructor(private readonly onReply: (value: RespValue) => void) {}

  feed(chunk: Buffer): void {
    const buf = this.tail.length === 0 ? chunk : Buffer.concat([this.tail, chunk]);
    let pos = 0;
    for (;;) {
      const cr = buf.indexOf(0x0d, pos);
      if (cr < 0 || cr + 1 >= buf.length) break;
      const type = buf[pos];
      const after = cr + 2;
      let value: RespValue;
      let next = after;
      if (type === 0x24) {
        // '$' bulk string: wait for the whole payload before consuming the header.
        const len = parseIntAt(buf, pos + 1, cr);
        if (len < 0) value = null;
        else {
          if (after + len + 2 > buf.length) break;
          value = buf.subarray(after, after + len);
          next = after + len + 2;
        }
      } else if (type === 0x2a) {
        // '*' array: open a frame; its items complete it.
        const count = parseIntAt(buf, pos + 1, cr);
        pos = after;
        if (count > 0) {
          this.stack.push({ items: [], remaining: count });
          continue;
        }
        value = count < 0 ? null : [];
      } else if (type === 0x2b) value = buf.toString('latin1', pos + 1, cr);
      else if (type === 0x2d) value = new RespError(buf.toString('latin1', pos + 1, cr));
      else if (type === 0x3a) value = parseIntAt(buf, pos + 1, cr);
      else throw new RespProtocolError(`unexpected RESP type byte 0x${(type ?? 0).toString(16)}`);
      pos = next;
      this.emit(value);
    }
    this.tail = pos >= buf.length ? Buffer.alloc(0) : buf.subarray(pos);
  }

  private emit(value: RespValue): void {
    let v = value;
    for (;;) {
      const top = this.stack.at(-1);
      if (!top) return this.onReply(v);
      top.items.push(v);
      if (--top.remaining > 0) return;
      this.stack.pop();
      v = top.items;
    }
  }
}

interface Pending {
  expected: number;
  replies: RespValue[];
  resolve: (replies: RespValue[]) => void;
  reject: (err: Error) => void;
}

export class RespClient {
  private pending: Pending[] = [];
  private readonly parser = new RespParser((v) => this.onReply(v));
  private closedError: Error | undefined;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.failAll(err));
    socket.on('close', () => this.failAll(new RespProtocolError('connection closed')));
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RespClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RespClient(socket));
      });
    });
  }

  /** Sends `payload` (one or more encoded commands) and resolves with its `expected` replies. */
  pipeline(payload: Buffer, expected: number): Promise<RespValue[]> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      this.pending.push({ expected, replies: [], resolve, reject });
      this.socket.write(payload);
    });
  }

  async command(args: readonly (string | Buffer)[]): Promise<RespValue> {
    const [reply] = await this.pipeline(encodeCommand(args), 1);
    return reply;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
      this.socket.end();
    });
  }

  private onData(chunk: Buffer): void {
    try {
      this.parser.feed(chunk);
    } catch (err) {
      this.socket.destroy(err instanceof Error ? err : new RespProtocolError(String(err)));
    }
  }

  private onReply(value: RespValue): void {
    const head = this.pending[0];
    if (!head) throw new RespProtocolError('reply without a pending request');
    head.replies.push(value);
    if (head.replies.length === head.expected) {
      this.pending.shift();
      head.resolve(head.replies);
    }
  }

  private failAll(err: Error): void {
    this.closedError ??= err;
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) p.reject(err);
  }
}
