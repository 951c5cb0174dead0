/**
 * A lean JSON body reader for the hot path (instead of express.json): checks the content type,
 * enforces the size limit while reading (and from Content-Length before reading), parses once.
 */
import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-errors.ts';

export interface JsonBody {
  raw: Buffer;
  value: unknown;
}

export function readJsonBody(req: IncomingMessage, limit: number): Promise<JsonBody> {
  const type = req.headers['content-type'];
  // The common spelling needs neither regex.
  if (type !== 'application/json') {
    if (type === undefined || !/^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type)) {
      return Promise.reject(new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/json'));
    }
    // JSON is UTF-8 (RFC 8259); a body declared in another charset would be misread, not refused.
    const charset = type.includes(';') ? /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(type)?.[1] : undefined;
    if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
      return Promise.reject(new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'a JSON body must be UTF-8 (charset=utf-8 or none)'));
    }
  }
  const declared = Number(req.headers['content-length'] ?? -1);
  if (declared > limit) {
    req.resume();
    return Promise.reject(new HttpError(413, 'PAYLOAD_TOO_LARGE', `the body may be at most ${limit} bytes`, { limit }));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > limit) {
        failed = true;
        reject(new HttpError(413, 'PAYLOAD_TOO_LARGE', `the body may be at most ${limit} bytes`, { limit }));
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.once('end', () => {
      if (failed) return;
      const raw = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      try {
        resolve({ raw, value: JSON.parse(raw.toString('utf8')) as unknown });
      } catch {
        reject(new HttpError(400, 'MALFORMED_JSON', 'the body is not valid JSON'));
      }
    });
    req.once('error', () => {
      if (!failed) reject(new HttpError(400, 'BAD_REQUEST', 'the request body could not be read'));
      failed = true;
    });
  });
}
