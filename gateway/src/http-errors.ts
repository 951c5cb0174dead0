/**
 * HTTP error shape `{"error":{"code","message",...}}` and the one mapping from internal errors
 * to HTTP statuses. Never a stack trace, never an internal message for unexpected errors.
 */
import type { ServerResponse } from 'node:http';
import { isSpillwayError } from '../../lib/src/errors.ts';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const STATUS_BY_CODE: Record<string, number> = {
  BUFFER_UNAVAILABLE: 503,
  QUOTAS_UNAVAILABLE: 503,
  UNKNOWN_TOPIC: 404,
};

/** What a client is told of an outage: internal messages name hosts, ports and client errors. */
const PUBLIC_MESSAGE_BY_CODE: Record<string, string> = {
  BUFFER_UNAVAILABLE: 'the buffer is unavailable; retry shortly',
  QUOTAS_UNAVAILABLE: 'the quota store is unavailable; retry shortly',
};

export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (isSpillwayError(err)) {
    const status = STATUS_BY_CODE[err.code] ?? 500;
    const headers: Record<string, string> = status === 503 ? { 'retry-after': '1' } : {};
    const message = status >= 500 ? (PUBLIC_MESSAGE_BY_CODE[err.code] ?? 'internal error') : err.message;
    return new HttpError(status, err.code, message, {}, headers);
  }
  // body-parser style errors from express internals carry a status and type.
  const e = err as { status?: number; type?: string };
  if (e && typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    return new HttpError(e.status, e.status === 413 ? 'PAYLOAD_TOO_LARGE' : 'BAD_REQUEST', 'the request could not be read');
  }
  return new HttpError(500, 'INTERNAL', 'internal error');
}

/** Writes a JSON body without express's res.json (no ETag hashing, no content negotiation). */
export function sendJson(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export function sendError(res: ServerResponse, e: HttpError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, e.status, JSON.stringify({ error: { code: e.code, message: e.message, ...e.extra } }), e.headers);
}
