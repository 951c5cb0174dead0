/**
 * The end-of-run verifier. From the orders the gateway answered 202 (recorded by the runner),
 * the broker's offsets (kafkajs admin: the topic's high watermarks and the drainer group's
 * committed offsets), the downstream simulator's ledger (GET /stats?keys=true) and the dead
 * letters (gateway GET /v1/admin/downstreams/:name/dlq and .../dlq/:orderId), it checks:
 *
 * - accounting: every accepted order is delivered, dead-lettered, or still buffered (in the log
 *   at or above the group's committed offset) — none lost;
 * - no duplicate orders (one client Idempotency-Key never yields two orderIds) and no duplicate
 *   effects at the downstream (its duplicates are redeliveries carrying a repeated
 *   Idempotency-Key, which it can dedupe; they are reported);
 * - stock never oversold (per SKU: sold ≤ stock, remaining ≥ 0, and what this run was accepted
 *   ≤ stock) and per-user limits held;
 * - the downstream never above its rate (ledger maxPerSecond ≤ rate + burst).
 *
 * It can first wait (bounded) for the drain to finish. It reads; it never changes the stack.
 */
import { Kafka, logLevel } from 'kafkajs';
import type { AcceptedOrder } from './recorder.ts';

export interface VerifyTarget {
  gatewayUrl: string;
  adminToken: string;
  downstreamUrl: string;
  downstreamName: string;
  /** Kafka bootstrap of the buffer (null: skip the broker offsets). */
  kafkaBrokers: string | null;
  topic: string;
  dlqTopic: string;
  /** The drainer's configured limit for this downstream (null: use the simulator's capacity). */
  rate: { rate: number; burst: number } | null;
}

export interface VerifyInput {
  accepted: readonly AcceptedOrder[];
  keyConflicts: readonly { idempotencyKey: string; orderIds: string[] }[];
  noAnswer: number;
}

export interface VerifyCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface SkuView {
  sku: string;
  stock: number;
  remaining: number;
  sold: number;
  perUserLimit: number;
}

export interface Verdict {
  ok: boolean;
  checks: VerifyCheck[];
  numbers: {
    accepted: number;
    delivered: number;
    deadLettered: number;
    buffered: number;
    lost: number;
    notInLog: number;
    ledgerReceived: number;
    ledgerDuplicates: number;
    unattributedDeliveries: number;
    maxPerSecond: number;
    rateLimit: number | null;
    brokerLag: number | null;
    dlqTopicRecords: number | null;
    skus: (SkuView & { acceptedThisRun: number })[];
  };
  drain: { drained: boolean; waitedMs: number };
  lostSample: string[];
}

interface Ledger {
  received: number;
  distinctKeys: number;
  duplicates: number;
  maxPerSecond: number;
  keys?: string[];
}

async function getJson<T>(url: string, headers: Record<string, string> = {}, timeoutMs = 30_000): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  return { status: res.status, body: (text === '' ? {} : JSON.parse(text)) as T };
}

const auth = (t: VerifyTarget) => ({ authorization: `Bearer ${t.adminToken}` });

async function ledger(t: VerifyTarget, keys: boolean): Promise<Ledger> {
  const r = await getJson<Ledger>(`${t.downstreamUrl}/stats${keys ? '?keys=true' : ''}`);
  if (r.status !== 200) throw new Error(`downstream GET /stats answered ${r.status}`);
  return r.body;
}

/** Runs `fn` over `items` with at most `n` in flight. */
async function pool<T, R>(items: readonly T[], n: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let i = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (i < items.length) {
        const k = i++;
        out[k] = await fn(items[k]);
      }
    }),
  );
  return out;
}

/** Which of `orderIds` are dead-lettered at this downstream (the list first, then one by one). */
async function deadLettered(t: VerifyTarget, orderIds: readonly string[]): Promise<{ ids: Set<string>; total: number | null }> {
  const found = new Set<string>();
  if (orderIds.length === 0 || t.adminToken === '') return { ids: found, total: null };
  const base = `${t.gatewayUrl}/v1/admin/downstreams/${encodeURIComponent(t.downstreamName)}/dlq`;
  const list = await getJson<{ total: number; items: { orderId: string }[] }>(`${base}?limit=1000`, auth(t));
  if (list.status !== 200) throw new Error(`GET ${base} answered ${list.status}`);
  const listed = new Set(list.body.items.map((i) => i.orderId));
  const rest: string[] = [];
  for (const id of orderIds) if (listed.has(id)) found.add(id);
  else rest.push(id);
  if (list.body.total > list.body.items.length && rest.length > 0) {
    const hits = await pool(rest, 16, async (id) => (await fetch(`${base}/${encodeURIComponent(id)}`, { headers: auth(t) })).status === 200);
    rest.forEach((id, i) => hits[i] && found.add(id));
  }
  return { ids: found, total: list.body.total };
}

interface Offsets {
  high: Map<number, number>;
  committed: Map<number, number>;
  dlqRecords: number | null;
}

async function brokerOffsets(t: VerifyTarget): Promise<Offsets | null> {
  if (t.kafkaBrokers === null) return null;
  const kafka = new Kafka({ clientId: 'spillway-loadtest-verifier', brokers: t.kafkaBrokers.split(','), logLevel: logLevel.NOTHING, retry: { retries: 3 } });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [ends, groups] = await Promise.all([admin.fetchTopicOffsets(t.topic), admin.fetchOffsets({ groupId: `spillway-drainer-${t.downstreamName}`, topics: [t.topic] })]);
    let dlqRecords: number | null = null;
    try {
      const dlq = await admin.fetchTopicOffsets(t.dlqTopic);
      dlqRecords = dlq.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
    } catch {
      dlqRecords = null; // no dead-letter topic yet
    }
    return {
      high: new Map(ends.map((e) => [e.partition, Number(e.high)])),
      committed: new Map((groups[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)])),
      dlqRecords,
    };
  } finally {
    await admin.disconnect();
  }
}

/**
 * Waits until every accepted order is delivered or dead-lettered, at most `timeoutMs`. Cheap
 * polls (ledger counts, DLQ total) decide when to look closer; `onProgress` gets the remaining count.
 */
export async function waitForDrain(t: VerifyTarget, accepted: readonly AcceptedOrder[], timeoutMs: number, onProgress?: (outstanding: number) => void): Promise<{ drained: boolean; waitedMs: number }> {
  const t0 = Date.now();
  const ids = accepted.map((o) => o.orderId);
  for (;;) {
    const l = await ledger(t, true);
    const keys = new Set(l.keys ?? []);
    const undelivered = ids.filter((id) => !keys.has(id));
    let outstanding = undelivered.length;
    if (outstanding > 0 && outstanding <= 5000) outstanding -= (await deadLettered(t, undelivered)).ids.size;
    onProgress?.(outstanding);
    if (outstanding === 0) return { drained: true, waitedMs: Date.now() - t0 };
    if (Date.now() - t0 >= timeoutMs) return { drained: false, waitedMs: Date.now() - t0 };
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export async function verify(t: VerifyTarget, input: VerifyInput, drain: { drained: boolean; waitedMs: number }): Promise<Verdict> {
  const checks: VerifyCheck[] = [];
  const l = await ledger(t, true);
  const keys = new Set(l.keys ?? []);
  const acceptedIds = new Set(input.accepted.map((o) => o.orderId));
  const delivered = input.accepted.filter((o) => keys.has(o.orderId));
  const undelivered = input.accepted.filter((o) => !keys.has(o.orderId));
  const dlq = await deadLettered(
    t,
    undelivered.map((o) => o.orderId),
  );
  let brokerError = '';
  const offsets = await brokerOffsets(t).catch((err: unknown) => {
    brokerError = (err as Error).message;
    return null;
  });
  let buffered = 0;
  const lost: string[] = [];
  for (const o of undelivered) {
    if (dlq.ids.has(o.orderId)) continue;
    if (offsets === null) {
      buffered += 1; // without the broker's offsets, what is not delivered counts as buffered
      continue;
    }
    const committed = offsets.committed.get(o.partition) ?? -1;
    const high = offsets.high.get(o.partition) ?? 0;
    if (o.offset < high && (committed < 0 || o.offset >= committed)) buffered += 1;
    else lost.push(`${o.orderId} (partition ${o.partition} offset ${o.offset}; committed ${committed}, high ${high})`);
  }
  const notInLog = offsets === null ? 0 : input.accepted.filter((o) => o.offset >= (offsets.high.get(o.partition) ?? 0)).length;
  const brokerLag = offsets === null ? null : [...offsets.high].reduce((n, [p, h]) => n + Math.max(0, h - Math.max(0, offsets.committed.get(p) ?? 0)), 0);
  const unattributed = [...keys].filter((k) => !acceptedIds.has(k)).length;
  const nDlq = dlq.ids.size;
  checks.push({
    name: 'accepted = delivered + dead-lettered + still buffered',
    ok: lost.length === 0 && notInLog === 0 && delivered.length + nDlq + buffered === input.accepted.length,
    detail:
      `${input.accepted.length} = ${delivered.length} delivered + ${nDlq} dead-lettered + ${buffered} buffered` +
      (offsets === null
        ? ` (no broker offsets${brokerError ? `: ${brokerError}` : ''}; undelivered orders counted as buffered)`
        : ` (broker lag of the drainer group: ${brokerLag})`) +
      (lost.length > 0 ? `; ${lost.length} LOST (below the committed offset, neither delivered nor dead-lettered)` : '') +
      (notInLog > 0 ? `; ${notInLog} acknowledged orders beyond the log's end` : ''),
  });
  checks.push({
    name: 'no duplicate orders, no duplicate effects',
    ok: input.keyConflicts.length === 0 && l.received === l.distinctKeys + l.duplicates,
    detail:
      `${input.keyConflicts.length} Idempotency-Keys accepted as two orders; downstream received ${l.received} deliveries of ${l.distinctKeys} distinct orders: ` +
      `${l.duplicates} redeliveries, each carrying a repeated Idempotency-Key (the downstream dedupes them)` +
      (unattributed > 0 ? `; ${unattributed} delivered orders are not from this run's 202s (earlier runs' backlog, or a request this run gave up on: ${input.noAnswer} got no answer)` : ''),
  });

  let skus: (SkuView & { acceptedThisRun: number })[] = [];
  if (t.adminToken !== '') {
    const r = await getJson<{ skus: SkuView[] }>(`${t.gatewayUrl}/v1/admin/skus`, auth(t));
    if (r.status !== 200) throw new Error(`GET /v1/admin/skus answered ${r.status}`);
    const perSku = new Map<string, number>();
    const perUser = new Map<string, number>();
    for (const o of input.accepted) {
      perSku.set(o.sku, (perSku.get(o.sku) ?? 0) + o.quantity);
      const k = `${o.sku}\u0000${o.userId}`;
      perUser.set(k, (perUser.get(k) ?? 0) + o.quantity);
    }
    skus = r.body.skus.filter((s) => perSku.has(s.sku)).map((s) => ({ ...s, acceptedThisRun: perSku.get(s.sku) ?? 0 }));
    const oversold = skus.filter((s) => s.sold > s.stock || s.remaining < 0 || s.acceptedThisRun > s.stock);
    checks.push({
      name: 'stock never oversold',
      ok: oversold.length === 0,
      detail:
        skus.length === 0
          ? 'no loaded SKU was ordered in this run'
          : skus.map((s) => `${s.sku}: sold ${s.sold} of ${s.stock}, accepted here ${s.acceptedThisRun}`).join('; ') + (oversold.length > 0 ? ` — OVERSOLD: ${oversold.map((s) => s.sku).join(', ')}` : ''),
    });
    const limits = new Map(skus.map((s) => [s.sku, s.perUserLimit]));
    let over = 0;
    let maxSeen = 0;
    for (const [k, q] of perUser) {
      const limit = limits.get(k.split('\u0000')[0]);
      if (limit === undefined || limit <= 0) continue;
      maxSeen = Math.max(maxSeen, q);
      if (q > limit) over += 1;
    }
    checks.push({ name: 'per-user limits held', ok: over === 0, detail: `${over} (SKU, user) pairs above their limit; most accepted for one user: ${maxSeen}` });
  }

  let rate = t.rate;
  if (rate === null) {
    const c = await getJson<{ rate: number; burst: number }>(`${t.downstreamUrl}/control`);
    rate = c.status === 200 && c.body.rate > 0 ? { rate: c.body.rate, burst: c.body.burst } : null;
  }
  const limit = rate === null ? null : rate.rate + rate.burst;
  checks.push({
    name: 'downstream never above its rate',
    ok: limit === null || l.maxPerSecond <= limit,
    detail: limit === null ? `no limit known; busiest second ${l.maxPerSecond}` : `busiest second ${l.maxPerSecond} deliveries ≤ rate ${rate?.rate} + burst ${rate?.burst} = ${limit}`,
  });

  return {
    ok: checks.every((c) => c.ok),
    checks,
    numbers: {
      accepted: input.accepted.length,
      delivered: delivered.length,
      deadLettered: nDlq,
      buffered,
      lost: lost.length,
      notInLog,
      ledgerReceived: l.received,
      ledgerDuplicates: l.duplicates,
      unattributedDeliveries: unattributed,
      maxPerSecond: l.maxPerSecond,
      rateLimit: limit,
      brokerLag,
      dlqTopicRecords: offsets?.dlqRecords ?? null,
      skus,
    },
    drain,
    lostSample: lost.slice(0, 20),
  };
}

export function verdictText(v: Verdict): string {
  const lines = [`verdict: ${v.ok ? 'PASS' : 'FAIL'}  (drain ${v.drain.drained ? 'finished' : 'not finished'} after ${(v.drain.waitedMs / 1000).toFixed(1)} s)`];
  for (const c of v.checks) lines.push(`  ${c.ok ? '✓' : '✗'} ${c.name}: ${c.detail}`);
  for (const s of v.lostSample) lines.push(`    lost: ${s}`);
  return lines.join('\n');
}
