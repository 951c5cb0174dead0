/**
 * The chaos run: a spike of orders (arrivals above what the capped downstream takes) through the
 * whole stack, one phase per fault, each fault injected `repeat` times at random moments (seeded),
 * then a bounded drain and the verdict per fault:
 *
 * - lost = orders answered 202 that are neither at the downstream nor in the durable `orders.dlq`
 *   topic, nor (when the bounded drain did not finish) still in the log at or above the drainers'
 *   committed offset — "undrained", which also fails the run (must be 0);
 * - oversold = SKUs whose 202s exceed their stock, or whose stock in Redis went below 0 (must be 0);
 * - duplicates = deliveries beyond the first of an order (each must carry the order's
 *   Idempotency-Key; a delivery whose key is not its orderId is a failure);
 * - 500/hang = gateway answers that are 5xx other than 503, timeouts, or connection errors from a
 *   gateway that was up (must be 0);
 * - recovery = per injection, from the end of the fault until a 202 again and a delivery again;
 * - every restarted process became ready, and at the end every process is healthy.
 *
 * Orders whose request got no 202 (503 during an outage, or cut by a gateway kill) may still be
 * delivered (the append landed, the answer did not): counted as "delivered without 202", never lost.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { Kafka, logLevel } from 'kafkajs';
import { keys } from '../../lib/src/redis-keys.ts';
import { waitFor } from '../../lib/src/testing/processes.ts';
import { LoadDriver, type OrderRecord, type SkuPlan } from './load.ts';
import { ADMIN_TOKEN, ChaosStack, DOWNSTREAM } from './stack.ts';

export const FAULTS = ['drainer-kill', 'redis-restart', 'broker-kill', 'gateway-kill', 'downstream-stop', 'disk-full'] as const;
export type Fault = (typeof FAULTS)[number];

export interface ChaosOptions {
  seed: number;
  /** Order arrivals per second (open model). */
  rate: number;
  drainerRate: number;
  downstreamRate: number;
  downstreamLatencyMs: number;
  gateways: number;
  drainers: number;
  /** Injections per fault. */
  repeat: number;
  faults: readonly Fault[];
  /** How long a fault lasts: a random time in [min, max] ms. */
  outageMs: [number, number];
  /** Quiet time before each injection: a random time in [min, max] ms. */
  gapMs: [number, number];
  tmpfsMb: number;
  drainTimeoutMs: number;
  recoveryTimeoutMs: number;
  poisonRatio: number;
  hangMs: number;
  log: (line: string) => void;
}

export interface FaultRow {
  fault: string;
  injected: number;
  skipped?: string;
  requests: number;
  accepted: number;
  delivered: number;
  deadLettered: number;
  lost: number;
  /** Not yet delivered when the drain bound ran out, but still in the log above the committed offset. */
  undrained: number;
  duplicates: number;
  oversold: number;
  unavailable503: number;
  failures5xxOrHang: number;
  cut: number;
  deliveredWithout202: number;
  recoveryMs: number[];
  /** Injections after which the stack did not recover within the bound. */
  unrecovered: number;
}

export interface ChaosReport {
  seed: number;
  rows: FaultRow[];
  totals: FaultRow;
  keyMismatches: number;
  unhealthy: string[];
  failedRestarts: string[];
  /** Errors of the harness itself (the run is not trustworthy if any). */
  harnessErrors: string[];
  drained: boolean;
  drainMs: number;
  lostSample: string[];
  failureSample: string[];
  oversoldDetail: string[];
  statusCounts: Record<string, number>;
  /** What the downstream answered (its ledger's count per status) and its busiest second. */
  downstreamStatus: Record<string, number>;
  downstreamMaxPerSecond: number;
  ok: boolean;
}

/** mulberry32: small, seedable, good enough to pick moments and SKUs. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Per phase: one plentiful SKU and two scarce ones (stock well below the phase's demand). */
function skuPlan(phase: string, rate: number): SkuPlan[] {
  return [
    { sku: `${phase}-PLENTY`, stock: 1_000_000, weight: 50 },
    { sku: `${phase}-SCARCE`, stock: Math.max(20, Math.round(rate * 0.6)), weight: 30 },
    { sku: `${phase}-RARE`, stock: Math.max(5, Math.round(rate * 0.1)), weight: 20 },
  ];
}

function emptyRow(fault: string): FaultRow {
  return {
    fault,
    injected: 0,
    requests: 0,
    accepted: 0,
    delivered: 0,
    deadLettered: 0,
    lost: 0,
    undrained: 0,
    duplicates: 0,
    oversold: 0,
    unavailable503: 0,
    failures5xxOrHang: 0,
    cut: 0,
    deliveredWithout202: 0,
    recoveryMs: [],
    unrecovered: 0,
  };
}

async function readDlqKeys(brokers: string): Promise<Set<string>> {
  const kafka = new Kafka({ clientId: 'chaos-verifier', brokers: [brokers], logLevel: logLevel.NOTHING, retry: { retries: 5 } });
  const admin = kafka.admin();
  await admin.connect();
  const out = new Set<string>();
  try {
    const topics = await admin.listTopics();
    if (!topics.includes('orders.dlq')) return out;
    const ends = await admin.fetchTopicOffsets('orders.dlq');
    const wanted = new Map(ends.map((e) => [e.partition, Number(e.high)]));
    if ([...wanted.values()].every((h) => h === 0)) return out;
    const consumer = kafka.consumer({ groupId: `chaos-reader-${randomBytes(4).toString('hex')}`, maxWaitTimeInMs: 100 });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic: 'orders.dlq', fromBeginning: true });
      const seen = new Map<number, number>();
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          if (message.key !== null) out.add(message.key.toString());
          seen.set(partition, Number(message.offset) + 1);
        },
      });
      await waitFor(() => [...wanted].every(([p, h]) => h === 0 || (seen.get(p) ?? 0) >= h), { timeoutMs: 60_000, what: 'reading orders.dlq to its end' });
    } finally {
      await consumer.disconnect();
    }
  } finally {
    await admin.disconnect();
  }
  return out;
}

async function committedOffsets(brokers: string): Promise<Map<number, number>> {
  const kafka = new Kafka({ clientId: 'chaos-verifier', brokers: [brokers], logLevel: logLevel.NOTHING, retry: { retries: 5 } });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const groups = await admin.fetchOffsets({ groupId: `spillway-drainer-${DOWNSTREAM}`, topics: ['orders'] });
    return new Map((groups[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
  } finally {
    await admin.disconnect();
  }
}

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const random = rng(o.seed);
  const between = (r: [number, number]) => Math.round(r[0] + random() * (r[1] - r[0]));
  const runId = `c${o.seed.toString(36)}${randomBytes(2).toString('hex')}`;
  o.log(`chaos: seed ${o.seed}, ${o.rate} orders/s, drainers ${o.drainerRate}/s, downstream capped at ${o.downstreamRate}/s, faults ${o.faults.join(', ')} x${o.repeat}`);
  const stack = new ChaosStack({ gateways: o.gateways, drainers: o.drainers, drainerRate: o.drainerRate, downstreamRate: o.downstreamRate, downstreamLatencyMs: o.downstreamLatencyMs, tmpfsMb: o.tmpfsMb, log: o.log });
  const phases = ['warmup', ...o.faults, 'tail'];
  const plans = new Map(phases.map((p) => [p, skuPlan(`${runId}-${p}`, o.rate)]));
  const stockOf = new Map([...plans.values()].flat().map((s) => [s.sku, s.stock]));
  const rows = new Map<string, FaultRow>(phases.map((p) => [p, emptyRow(p)]));
  const failedRestarts: string[] = [];
  const recoveries: { phase: string; end: number; ms: number | null }[] = [];
  let load: LoadDriver | null = null;
  try {
    await stack.start();
    const admin = await fetch(`${stack.gatewayUrl(0)}/v1/admin/skus`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ skus: [...plans.values()].flat().map((s) => ({ sku: s.sku, stock: s.stock })) }),
    });
    if (admin.status !== 200) throw new Error(`loading SKUs: ${admin.status} ${await admin.text()}`);
    load = new LoadDriver({
      rate: o.rate,
      gatewayUrl: (i) => stack.gatewayUrl(i),
      gatewayUp: stack.gatewayUp,
      skus: (p) => plans.get(p) ?? [],
      poisonRatio: o.poisonRatio,
      random,
      hangMs: o.hangMs,
      runId,
    });
    const driver = load;
    driver.start();
    const t0 = Date.now();
    // Warm-up: the stack takes orders and delivers before the first fault.
    await waitFor(() => driver.records.some((r) => r.status === 202) && stack.downstream.deliveries.length > 0, { timeoutMs: 60_000, what: 'first 202 and first delivery' });
    await sleep(between(o.gapMs));

    /** Waits until a request sent after `end` got a 202 and the downstream took a delivery after it. */
    const recovery = async (phase: string, end: number) => {
      let ms: number | null = null;
      try {
        await waitFor(
          () => {
            const first202 = driver.records.find((r) => r.sentAt >= end && r.status === 202);
            const firstDelivery = stack.downstream.deliveries.find((d) => d.at >= end);
            if (first202 === undefined || firstDelivery === undefined) return false;
            ms = Math.max(first202.doneAt, firstDelivery.at) - end;
            return true;
          },
          { timeoutMs: o.recoveryTimeoutMs, intervalMs: 100, what: `recovery after ${phase}` },
        );
      } catch {
        ms = null;
      }
      recoveries.push({ phase, end, ms });
      if (ms === null) for (const l of stack.recentProblems()) o.log(`    ${l}`);
      o.log(`  ${phase}: ${ms === null ? `NOT recovered within ${o.recoveryTimeoutMs / 1000} s` : `recovered in ${(ms / 1000).toFixed(1)} s`}`);
      return ms;
    };

    const restart = async <T>(what: string, fn: () => Promise<T>): Promise<T | null> => {
      try {
        return await fn();
      } catch (err) {
        // A process that does not come back by itself fails the run (no manual repair, no retry here).
        failedRestarts.push(`${what}: ${(err as Error).message.slice(0, 300)}`);
        o.log(`  ${what} failed to start: ${(err as Error).message.slice(0, 300)}`);
        return null;
      }
    };

    const background: Promise<void>[] = [];
    const restarting = new Map<number, Promise<void>>();
    for (const fault of o.faults) {
      const row = rows.get(fault) as FaultRow;
      if (fault === 'disk-full' && stack.diskFaultUnavailable !== null) {
        row.skipped = stack.diskFaultUnavailable;
        o.log(`${fault}: SKIPPED — ${stack.diskFaultUnavailable}`);
        continue;
      }
      driver.phase = fault;
      o.log(`${fault} (t=${((Date.now() - t0) / 1000).toFixed(0)} s)`);
      for (let n = 0; n < o.repeat; n++) {
        await sleep(between(o.gapMs));
        const outage = between(o.outageMs);
        row.injected += 1;
        switch (fault) {
          case 'broker-kill': {
            await stack.broker.kill('SIGKILL');
            await sleep(outage);
            await restart('broker', () => stack.restartBroker());
            break;
          }
          case 'gateway-kill': {
            const i = Math.floor(random() * stack.gateways.length);
            stack.gatewayUp[i] = false;
            driver.dying.add(i);
            await stack.gateways[i].kill('SIGKILL');
            await sleep(outage);
            const g = await restart(`gateway ${i}`, () => stack.startGateway(i));
            if (g !== null) stack.gateways[i] = g;
            driver.dying.delete(i);
            stack.gatewayUp[i] = g !== null;
            break;
          }
          case 'drainer-kill': {
            // The restarted drainer joins its consumer group only once the dead member's session
            // expired (30 s): it restarts in the background while the run goes on, and must be
            // running before the verdict. A drainer still restarting is not killed again.
            if (restarting.size === stack.drainers.length) await Promise.race(restarting.values());
            const idle = stack.drainers.map((_, k) => k).filter((k) => !restarting.has(k));
            const i = idle[Math.floor(random() * idle.length)];
            await stack.drainers[i].kill('SIGKILL');
            await sleep(outage);
            const began = Date.now();
            const done = restart(`drainer ${i}`, () => stack.startDrainer()).then((d) => {
              if (d !== null) stack.drainers[i] = d;
              restarting.delete(i);
              o.log(`  drainer ${i} running again ${((Date.now() - began) / 1000).toFixed(1)} s after its restart`);
            });
            restarting.set(i, done);
            background.push(done);
            break;
          }
          case 'redis-restart': {
            await stack.redisProc.stop('SIGKILL');
            await sleep(outage);
            await restart('redis-server', () => stack.restartRedis());
            break;
          }
          case 'downstream-stop': {
            await stack.downstream.close();
            await sleep(outage);
            await restart('downstream', () => stack.downstream.open(stack.downstream.port));
            break;
          }
          case 'disk-full': {
            const { file, bytes } = await stack.fillDisk();
            o.log(`  disk full (filler ${(bytes / 1048576).toFixed(1)} MiB)`);
            await sleep(outage);
            await fs.promises.rm(file, { force: true });
            break;
          }
        }
        const end = Date.now();
        o.log(`  injection ${n + 1}: ${fault} for ${outage} ms`);
        await recovery(fault, end);
      }
    }
    driver.phase = 'tail';
    await sleep(1000);
    await Promise.all(background);
    await driver.stop();
    o.log(`load stopped after ${((Date.now() - t0) / 1000).toFixed(0)} s: ${driver.records.length} requests`);

    // Drain (bounded): every 202 at the downstream or dead-lettered (Redis index while waiting).
    const acceptedIds = new Set(driver.records.filter((r) => r.status === 202 && r.orderId !== undefined).map((r) => r.orderId as string));
    const d0 = Date.now();
    let drained = false;
    let lastLog = 0;
    while (Date.now() - d0 < o.drainTimeoutMs) {
      const delivered = new Set(stack.downstream.deliveries.map((d) => d.orderId));
      const dlq = new Set(await stack.redis.zrange(keys.dlqIndex(DOWNSTREAM), '0', '-1').catch(() => [] as string[]));
      let outstanding = 0;
      for (const id of acceptedIds) if (!delivered.has(id) && !dlq.has(id)) outstanding += 1;
      if (outstanding === 0) {
        drained = true;
        break;
      }
      if (Date.now() - lastLog > 10_000) {
        lastLog = Date.now();
        o.log(`  draining: ${outstanding} of ${acceptedIds.size} accepted orders outstanding`);
      }
      await sleep(500);
    }
    const drainMs = Date.now() - d0;
    o.log(`drain ${drained ? 'finished' : 'NOT finished'} after ${(drainMs / 1000).toFixed(1)} s`);

    const unhealthy = await stack.waitHealthy(60_000);
    const dlqKeys = await readDlqKeys(stack.brokers);
    const committed = drained ? new Map<number, number>() : await committedOffsets(stack.brokers).catch(() => new Map<number, number>());
    const skuState = new Map<string, { stock: number; remaining: number; sold: number }>();
    const r = await fetch(`${stack.gatewayUrl(0)}/v1/admin/skus`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    if (r.status === 200) for (const s of ((await r.json()) as { skus: { sku: string; stock: number; remaining: number; sold: number }[] }).skus) skuState.set(s.sku, s);
    return summarize({ o, committed, harnessErrors: driver.driverErrors, records: driver.records, stack, dlqKeys, skuState, stockOf, rows, recoveries, failedRestarts, unhealthy, drained, drainMs });
  } finally {
    await load?.close();
    await stack.stop();
  }
}

function summarize(a: {
  o: ChaosOptions;
  /** The drainers' committed offset per partition of `orders` (empty when unreadable: then nothing counts as undrained). */
  committed: Map<number, number>;
  harnessErrors: string[];
  records: OrderRecord[];
  stack: ChaosStack;
  dlqKeys: Set<string>;
  skuState: Map<string, { stock: number; remaining: number; sold: number }>;
  stockOf: Map<string, number>;
  rows: Map<string, FaultRow>;
  recoveries: { phase: string; end: number; ms: number | null }[];
  failedRestarts: string[];
  unhealthy: string[];
  drained: boolean;
  drainMs: number;
}): ChaosReport {
  const { records, stack, dlqKeys, rows } = a;
  const rowOf = (phase: string): FaultRow => {
    let row = rows.get(phase);
    if (row === undefined) rows.set(phase, (row = emptyRow(phase)));
    return row;
  };
  const perOrder = new Map<string, number>();
  let keyMismatches = 0;
  for (const d of stack.downstream.deliveries) {
    perOrder.set(d.orderId, (perOrder.get(d.orderId) ?? 0) + 1);
    if (d.key !== d.orderId) keyMismatches += 1;
  }
  const byUser = new Map<string, OrderRecord>(records.map((r) => [r.userId, r]));
  const acceptedIds = new Set<string>();
  const lostSample: string[] = [];
  const failureSample: string[] = [];
  const statusCounts: Record<string, number> = {};
  const acceptedPerSku = new Map<string, number>();
  for (const r of records) {
    const row = rowOf(r.phase);
    row.requests += 1;
    const label = r.code !== undefined && typeof r.status === 'number' ? `${r.status} ${r.code}` : String(r.status);
    statusCounts[label] = (statusCounts[label] ?? 0) + 1;
    if (r.status === 503) row.unavailable503 += 1;
    if (r.status === 'cut') row.cut += 1;
    if ((typeof r.status === 'number' && r.status >= 500 && r.status !== 503) || r.status === 'timeout' || r.status === 'conn' || r.status === 'pending') {
      row.failures5xxOrHang += 1;
      if (failureSample.length < 20) failureSample.push(`${r.phase}: ${label} from gateway ${r.gateway} at +${r.doneAt - r.sentAt} ms`);
    }
    if (r.status !== 202 || r.orderId === undefined) continue;
    acceptedIds.add(r.orderId);
    acceptedPerSku.set(r.sku, (acceptedPerSku.get(r.sku) ?? 0) + 1);
    row.accepted += 1;
    const n = perOrder.get(r.orderId) ?? 0;
    if (n > 0) {
      row.delivered += 1;
      row.duplicates += n - 1;
    } else if (dlqKeys.has(r.orderId)) row.deadLettered += 1;
    else if (r.partition !== undefined && r.offset !== undefined && r.offset >= (a.committed.get(r.partition) ?? Infinity)) row.undrained += 1;
    else {
      row.lost += 1;
      if (lostSample.length < 20) lostSample.push(`${r.orderId} (${r.phase}, partition ${r.partition} offset ${r.offset}, sku ${r.sku}${r.poison ? ', poison' : ''})`);
    }
  }
  // Deliveries of orders that never got a 202: attributed to their request through the (unique) userId.
  const userOf = new Map(stack.downstream.deliveries.map((d) => [d.orderId, d.userId]));
  for (const [id, n] of perOrder) {
    if (acceptedIds.has(id)) continue;
    const rec = byUser.get(userOf.get(id) ?? '');
    const row = rowOf(rec?.phase ?? 'unattributed');
    row.deliveredWithout202 += 1;
    row.duplicates += n - 1;
  }
  // Oversell per SKU: 202s above the stock, or Redis below 0 / sold above stock.
  const oversoldDetail: string[] = [];
  for (const [sku, stock] of a.stockOf) {
    const acc = acceptedPerSku.get(sku) ?? 0;
    const st = a.skuState.get(sku);
    const bad = acc > stock || (st !== undefined && (st.remaining < 0 || st.sold > st.stock));
    if (st === undefined) oversoldDetail.push(`${sku}: not readable from the admin API`);
    if (!bad) continue;
    oversoldDetail.push(`${sku}: stock ${stock}, 202s ${acc}, Redis remaining ${st?.remaining}, sold ${st?.sold}`);
    const phase = [...rows.keys()].find((p) => sku.endsWith(`-${p}-PLENTY`) || sku.endsWith(`-${p}-SCARCE`) || sku.endsWith(`-${p}-RARE`));
    if (phase !== undefined) (rows.get(phase) as FaultRow).oversold += 1;
  }
  for (const rec of a.recoveries) {
    const row = rows.get(rec.phase) as FaultRow;
    if (rec.ms === null) row.unrecovered += 1;
    else row.recoveryMs.push(rec.ms);
  }
  const list = [...rows.values()].filter((r) => r.requests > 0 || r.injected > 0 || r.skipped !== undefined);
  const totals = emptyRow('total');
  for (const r of list) {
    for (const k of ['injected', 'requests', 'accepted', 'delivered', 'deadLettered', 'lost', 'undrained', 'duplicates', 'oversold', 'unavailable503', 'failures5xxOrHang', 'cut', 'deliveredWithout202', 'unrecovered'] as const) totals[k] += r[k];
    totals.recoveryMs.push(...r.recoveryMs);
  }
  const unreadable = oversoldDetail.filter((d) => d.endsWith('not readable from the admin API')).length;
  const ok =
    totals.lost === 0 &&
    totals.oversold === 0 &&
    unreadable === 0 &&
    totals.failures5xxOrHang === 0 &&
    totals.unrecovered === 0 &&
    keyMismatches === 0 &&
    a.unhealthy.length === 0 &&
    a.failedRestarts.length === 0 &&
    a.harnessErrors.length === 0 &&
    a.drained;
  return {
    seed: a.o.seed,
    rows: list,
    totals,
    keyMismatches,
    unhealthy: a.unhealthy,
    failedRestarts: a.failedRestarts,
    harnessErrors: a.harnessErrors.slice(0, 20),
    drained: a.drained,
    drainMs: a.drainMs,
    lostSample,
    failureSample,
    oversoldDetail,
    statusCounts,
    downstreamStatus: stack.downstream.sim.ledger.snapshot().byStatus,
    downstreamMaxPerSecond: stack.downstream.sim.ledger.snapshot().maxPerSecond,
    ok,
  };
}

const fmtMs = (ms: number[]) => (ms.length === 0 ? '—' : `${(Math.max(...ms) / 1000).toFixed(1)} s`);

export function reportTable(rep: ChaosReport): string {
  const head = ['fault', 'injected', 'requests', 'accepted (202)', 'delivered', 'dead-lettered', 'lost', 'undrained', 'duplicates', 'oversold', '503s', '500/hang', 'cut by kill', 'delivered w/o 202', 'max recovery'];
  const line = (r: FaultRow) => [
    r.fault,
    r.skipped !== undefined ? 'skipped' : String(r.injected),
    String(r.requests),
    String(r.accepted),
    String(r.delivered),
    String(r.deadLettered),
    String(r.lost),
    String(r.undrained),
    String(r.duplicates),
    String(r.oversold),
    String(r.unavailable503),
    String(r.failures5xxOrHang),
    String(r.cut),
    String(r.deliveredWithout202),
    r.unrecovered > 0 ? `${r.unrecovered} NOT RECOVERED` : fmtMs(r.recoveryMs),
  ];
  const rows = [head, ...rep.rows.map(line), line(rep.totals)];
  const widths = head.map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const fmt = (r: string[]) => `| ${r.map((v, c) => (c === 0 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join(' | ')} |`;
  const sep = `|${widths.map((w, c) => (c === 0 ? '-'.repeat(w + 1) + '-' : '-'.repeat(w + 1) + ':')).join('|')}|`;
  const out = [fmt(head), sep, ...rows.slice(1).map(fmt)];
  out.push('');
  out.push(`seed ${rep.seed}; drain ${rep.drained ? 'finished' : 'NOT finished'} in ${(rep.drainMs / 1000).toFixed(1)} s; Idempotency-Key ≠ orderId on ${rep.keyMismatches} deliveries`);
  out.push(`gateway answers: ${Object.entries(rep.statusCounts).sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k} ×${v}`).join(', ')}`);
  out.push(`downstream answers: ${Object.entries(rep.downstreamStatus).map(([k, v]) => `${k} ×${v}`).join(', ')}; busiest second ${rep.downstreamMaxPerSecond}`);
  if (rep.unhealthy.length > 0) out.push(`NOT HEALTHY at the end: ${rep.unhealthy.join('; ')}`);
  for (const f of rep.failedRestarts) out.push(`RESTART FAILED: ${f}`);
  for (const f of rep.harnessErrors) out.push(`HARNESS ERROR: ${f}`);
  for (const l of rep.lostSample) out.push(`LOST: ${l}`);
  for (const f of rep.failureSample) out.push(`500/HANG: ${f}`);
  for (const d of rep.oversoldDetail) out.push(`OVERSOLD: ${d}`);
  out.push(`verdict: ${rep.ok ? 'PASS' : 'FAIL'}`);
  return out.join('\n');
}
