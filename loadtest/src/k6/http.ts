/**
 * The `k6/http` module of the shim. `asyncRequest` is the one to use in iterations (an undici
 * request; the VU waits, the event loop does not). The synchronous helpers (`get`, `post`, `put`,
 * `del`, `request`, ...) block through a worker and are meant for `setup()` / `teardown()`.
 *
 * Each request adds k6's built-in samples (http_reqs, http_req_duration, http_req_waiting,
 * http_req_failed, data_sent, data_received) with k6's system tags (method, status, name, url,
 * expected_response, scenario, group) and is shown to the runtime's exchange observers (the
 * runner's order recorder). http_req_duration here is the time from sending the request to the
 * last body byte (k6: sending + waiting + receiving).
 */
import { Agent, request as undiciRequest, type Dispatcher } from 'undici';
import { sampleTags } from './metrics.ts';
import { runtime, type HttpExchange } from './runtime.ts';
import { fetchSync } from './sync-fetch.ts';

export interface ExpectedStatuses {
  readonly expected: (status: number) => boolean;
}

export interface Params {
  headers?: Record<string, string>;
  tags?: Record<string, string>;
  timeout?: string | number;
  responseCallback?: ExpectedStatuses | null;
  responseType?: 'text' | 'binary' | 'none';
}

type Body = string | null | undefined | Record<string, string | number | boolean>;

const DEFAULT_TIMEOUT_MS = 60_000;

/** `expectedStatuses(200, {min: 400, max: 409})` */
export function expectedStatuses(...spec: (number | { min: number; max: number })[]): ExpectedStatuses {
  return {
    expected: (status) => spec.some((s) => (typeof s === 'number' ? status === s : status >= s.min && status <= s.max)),
  };
}

let defaultCallback: ExpectedStatuses | null = expectedStatuses({ min: 200, max: 399 });

export function setResponseCallback(cb: ExpectedStatuses | null): void {
  defaultCallback = cb;
}

function canonical(name: string): string {
  return name
    .split('-')
    .map((p) => (p === '' ? p : p[0].toUpperCase() + p.slice(1).toLowerCase()))
    .join('-');
}

function timeoutMs(t: string | number | undefined): number {
  if (t === undefined) return DEFAULT_TIMEOUT_MS;
  if (typeof t === 'number') return t;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(t.trim());
  if (!m) throw new Error(`invalid timeout '${t}'`);
  const n = Number(m[1]);
  return m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : m[2] === 'ms' ? n : n;
}

function encodeBody(body: Body, headers: Record<string, string>): string | null {
  if (body === null || body === undefined) return null;
  if (typeof body === 'string') return body;
  if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/x-www-form-urlencoded';
  return new URLSearchParams(Object.entries(body).map(([k, v]): [string, string] => [k, String(v)])).toString();
}

/** Selects `a.b.0.c` from parsed JSON (k6 takes gjson paths; dotted paths and indexes cover our use). */
function select(value: unknown, selector: string): unknown {
  let cur = value;
  for (const part of selector.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

export interface Timings {
  duration: number;
  waiting: number;
  sending: number;
  receiving: number;
  blocked: number;
  connecting: number;
  tls_handshaking: number;
}

export class Response {
  constructor(
    readonly status: number,
    readonly body: string | null,
    readonly headers: Record<string, string>,
    readonly timings: Timings,
    readonly url: string,
    readonly error: string,
    readonly error_code: number,
    readonly request: { method: string; url: string; headers: Record<string, string>; body: string },
  ) {}

  get status_text(): string {
    return `${this.status}`;
  }

  get proto(): string {
    return 'HTTP/1.1';
  }

  json(selector?: string): unknown {
    if (this.body === null) throw new Error('the response has no body');
    const parsed = JSON.parse(this.body) as unknown;
    return selector === undefined ? parsed : select(parsed, selector);
  }
}

function errorCode(error: string, timedOut: boolean): number {
  if (timedOut) return 1050;
  if (/ECONNREFUSED/.test(error)) return 1212;
  if (/ECONNRESET|socket/i.test(error)) return 1220;
  if (/ENOTFOUND|EAI_AGAIN/.test(error)) return 1100;
  return 1000;
}

interface Completed {
  status: number;
  headers: Record<string, string>;
  body: string;
  durationMs: number;
  error: string;
  timedOut: boolean;
}

function record(method: string, url: string, headers: Record<string, string>, body: string | null, params: Params | undefined, done: Completed): Response {
  const rt = runtime();
  const r = rt.registry;
  const cb = params?.responseCallback === undefined ? defaultCallback : params.responseCallback;
  const expected = cb === null ? true : cb.expected(done.status);
  const tags = sampleTags({
    method,
    url,
    name: params?.tags?.name ?? url,
    status: String(done.status),
    expected_response: String(expected),
    ...(params?.tags ?? {}),
  });
  r.get('http_reqs')?.add(1, tags);
  r.get('http_req_duration')?.add(done.durationMs, tags);
  r.get('http_req_waiting')?.add(done.durationMs, tags);
  if (cb !== null) r.get('http_req_failed')?.add(expected ? 0 : 1, tags);
  r.get('data_sent')?.add((body?.length ?? 0) + url.length + 64, tags);
  r.get('data_received')?.add(done.body.length + 64, tags);
  const exchange: HttpExchange = {
    method,
    url,
    requestHeaders: headers,
    requestBody: body,
    status: done.status,
    responseBody: done.body,
    durationMs: done.durationMs,
    endedAt: performance.now(),
    error: done.error,
  };
  for (const o of rt.exchangeObservers) o(exchange);
  const timings: Timings = { duration: done.durationMs, waiting: done.durationMs, sending: 0, receiving: 0, blocked: 0, connecting: 0, tls_handshaking: 0 };
  return new Response(
    done.status,
    params?.responseType === 'none' ? null : done.body,
    done.headers,
    timings,
    url,
    done.error,
    done.error === '' ? 0 : errorCode(done.error, done.timedOut),
    { method, url, headers, body: body ?? '' },
  );
}

let agent: Dispatcher | null = null;

function dispatcher(): Dispatcher {
  agent ??= new Agent({ keepAliveTimeout: 30_000, connections: null, pipelining: 1 });
  return agent;
}

export async function closeAgent(): Promise<void> {
  if (agent !== null) {
    const a = agent;
    agent = null;
    await a.close();
  }
}

export async function asyncRequest(method: string, url: string, body?: Body, params?: Params): Promise<Response> {
  const headers: Record<string, string> = { 'User-Agent': 'spillway-loadtest (k6 shim)', ...(params?.headers ?? {}) };
  const encoded = encodeBody(body, headers);
  const limit = timeoutMs(params?.timeout);
  const t0 = performance.now();
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), limit);
  let done: Completed;
  try {
    const res = await undiciRequest(url, { method: method as Dispatcher.HttpMethod, headers, body: encoded ?? undefined, dispatcher: dispatcher(), signal: ac.signal });
    const text = await res.body.text();
    const hs: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) hs[canonical(k)] = Array.isArray(v) ? v.join(', ') : v;
    done = { status: res.statusCode, headers: hs, body: text, durationMs: performance.now() - t0, error: '', timedOut: false };
  } catch (err) {
    const timedOut = ac.signal.aborted;
    const e = err as Error & { code?: string };
    done = { status: 0, headers: {}, body: '', durationMs: performance.now() - t0, error: timedOut ? 'request timeout' : `${e.code ?? ''} ${e.message}`.trim(), timedOut };
  } finally {
    clearTimeout(timer);
  }
  return record(method, url, headers, encoded, params, done);
}

export function request(method: string, url: string, body?: Body, params?: Params): Response {
  const rt = runtime();
  if (rt.running && rt.context.getStore() !== undefined) rt.syncCallsDuringRun += 1;
  const headers: Record<string, string> = { 'User-Agent': 'spillway-loadtest (k6 shim)', ...(params?.headers ?? {}) };
  const encoded = encodeBody(body, headers);
  const r = fetchSync({ method, url, headers, body: encoded, timeoutMs: timeoutMs(params?.timeout) });
  const done: Completed = r.ok
    ? {
        status: r.status,
        headers: Object.fromEntries(r.headers.map(([k, v]) => [canonical(k), v])),
        body: r.body,
        durationMs: r.durationMs,
        error: '',
        timedOut: false,
      }
    : { status: 0, headers: {}, body: '', durationMs: r.durationMs, error: r.error, timedOut: r.timeout };
  return record(method, url, headers, encoded, params, done);
}

export const get = (url: string, params?: Params): Response => request('GET', url, null, params);
export const head = (url: string, params?: Params): Response => request('HEAD', url, null, params);
export const post = (url: string, body?: Body, params?: Params): Response => request('POST', url, body, params);
export const put = (url: string, body?: Body, params?: Params): Response => request('PUT', url, body, params);
export const patch = (url: string, body?: Body, params?: Params): Response => request('PATCH', url, body, params);
export const del = (url: string, body?: Body, params?: Params): Response => request('DELETE', url, body, params);
export const options = (url: string, body?: Body, params?: Params): Response => request('OPTIONS', url, body, params);
