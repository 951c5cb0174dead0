/**
 * A small keep-alive HTTP client over node:http for the gateway tests: bounded sockets per
 * gateway, raw bodies (so a test can send chunked, untyped or oversized bodies) and answers as
 * text, plus a bounded-concurrency map so thousands of requests run on two cores.
 */
import http from 'node:http';

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  /** Sent with a Content-Length. */
  body?: string | Buffer;
  /** Sent one by one without a Content-Length (Transfer-Encoding: chunked). */
  chunks?: Buffer[];
}

export class HttpClient {
  private readonly agent: http.Agent;

  constructor(
    readonly baseUrl: string,
    maxSockets = 64,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets });
  }

  request(method: string, path: string, opts: RequestOptions = {}): Promise<HttpAnswer> {
    const url = new URL(path, this.baseUrl);
    const headers: Record<string, string | number> = { ...opts.headers };
    if (opts.body !== undefined) headers['content-length'] = Buffer.byteLength(opts.body);
    return new Promise<HttpAnswer>((resolve, reject) => {
      const req = http.request(url, { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.once('error', reject);
      });
      req.once('error', reject);
      if (opts.chunks !== undefined) {
        for (const c of opts.chunks) req.write(c);
        req.end();
      } else {
        req.end(opts.body);
      }
    });
  }

  postJson(path: string, value: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
    return this.request('POST', path, { headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(value) });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Runs fn over items with at most `limit` calls in flight; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** The parsed `{"error":{...}}` body of an error answer. */
export interface ErrorBody {
  error: { code: string; message: string; [extra: string]: unknown };
}

export function parseJson<T>(text: string): T {
  return JSON.parse(text) as T;
}
