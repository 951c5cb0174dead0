/**
 * A raw TCP client for HTTP tests that node's own client cannot express: trickled headers and
 * bodies, malformed request lines, pipelining, and watching a connection being closed.
 */
import net from 'node:net';
import { waitFor } from '../../../lib/src/testing/processes.ts';

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export class RawSocket {
  private readonly chunks: Buffer[] = [];
  closed = false;
  readonly socket: net.Socket;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => this.chunks.push(c));
    socket.on('error', () => undefined);
    socket.once('close', () => (this.closed = true));
  }

  static connect(port: number): Promise<RawSocket> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      const raw = new RawSocket(s);
      s.once('connect', () => resolve(raw));
      s.once('error', reject);
    });
  }

  /** Everything received so far, as latin1 (byte per char). */
  text(): string {
    return Buffer.concat(this.chunks).toString('latin1');
  }

  write(data: string | Buffer): void {
    if (!this.closed && !this.socket.destroyed) this.socket.write(data);
  }

  /** Writes `piece` every `everyMs` until the server closes the connection (or `max` pieces). */
  trickle(piece: string, everyMs: number, max = 10_000): void {
    let n = 0;
    const timer = setInterval(() => {
      if (this.closed || ++n > max) {
        clearInterval(timer);
        return;
      }
      this.write(piece);
    }, everyMs);
    this.socket.once('close', () => clearInterval(timer));
  }

  async waitClosed(timeoutMs = 30_000): Promise<void> {
    await waitFor(() => this.closed, { timeoutMs, what: 'the server to close the connection' });
  }

  /** Waits for `n` complete answers (Content-Length framed) and returns them. */
  async answers(n: number, timeoutMs = 30_000): Promise<RawAnswer[]> {
    return waitFor(
      () => {
        const parsed = parseAnswers(this.text());
        return parsed.length >= n ? parsed : null;
      },
      { timeoutMs, what: `${n} HTTP answer(s)` },
    );
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Parses consecutive HTTP/1.1 answers framed by Content-Length (what the gateway sends). */
export function parseAnswers(text: string): RawAnswer[] {
  const out: RawAnswer[] = [];
  let rest = text;
  for (;;) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) return out;
    const [statusLine, ...lines] = rest.slice(0, end).split('\r\n');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? NaN);
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    if (rest.length < end + 4 + length) return out;
    out.push({ status, headers, body: Buffer.from(rest.slice(end + 4, end + 4 + length), 'latin1').toString('utf8') });
    rest = rest.slice(end + 4 + length);
  }
}
