/**
 * What a downstream's answer means for an order (pure):
 *   2xx                      → delivered
 *   429, or 503 + Retry-After → pushback: slow down, not a failure, no attempt counted
 *   5xx, timeouts, network   → retry with exponential backoff and jitter
 *   other 4xx                → dead letter (the downstream will never accept it)
 */
export type Outcome =
  | { kind: 'delivered'; status: number }
  | { kind: 'pushback'; status: number; retryAfterMs: number }
  | { kind: 'retry'; status: number | null; reason: string }
  | { kind: 'dead'; status: number; reason: string };

/** Retry-After as seconds or an HTTP date; null when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, nowMs = Date.now()): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return null;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Math.round(Number(v) * 1000);
  const date = Date.parse(v);
  return Number.isNaN(date) ? null : Math.max(0, date - nowMs);
}

export function classify(status: number, retryAfter: string | string[] | undefined): Outcome {
  if (status >= 200 && status < 300) return { kind: 'delivered', status };
  const ra = parseRetryAfter(retryAfter);
  if (status === 429) return { kind: 'pushback', status, retryAfterMs: ra ?? 1000 };
  if (status === 503 && ra !== null) return { kind: 'pushback', status, retryAfterMs: ra };
  if (status >= 500 || status === 408) return { kind: 'retry', status, reason: `HTTP ${status}` };
  return { kind: 'dead', status, reason: `HTTP ${status}` };
}

export function classifyError(err: unknown): Outcome {
  const code = (err as { code?: string }).code ?? (err as Error).name;
  return { kind: 'retry', status: null, reason: `network: ${code ?? 'error'}` };
}
