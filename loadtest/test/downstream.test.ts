/**
 * `spillway downstream` as a real process over real HTTP. Assertions are on counts and upper
 * bounds (derived from client-measured elapsed time where needed), never on how fast anything is.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startSpillway, waitFor, type SpillwayProcess } from '../../lib/src/testing/processes.ts';

interface Stats {
  received: number;
  distinctKeys: number;
  duplicates: number;
  maxPerSecond: number;
  byStatus: Record<string, number>;
  perSecond: { second: number; count: number }[];
  keys?: string[];
}

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

type DownstreamProcess = SpillwayProcess & { url: string; readyLine: Record<string, unknown> };

const RATE = 1;
const BURST = 10;

async function startDownstream(args: string[] = []): Promise<DownstreamProcess> {
  const p = await startSpillway(['downstream', '--port', '0', ...args], { ready: (l) => l.msg === 'downstream listening' });
  return { ...p, url: `http://127.0.0.1:${p.readyLine.port as number}` };
}

async function call(url: string, method: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
}

describe('spillway downstream', () => {
  let ds: DownstreamProcess;

  const post = (key: string | undefined, order: unknown = { orderId: key, sku: 'SKU-1', userId: 'u-1', quantity: 1, priceCents: 100 }) =>
    call(`${ds.url}/orders`, 'POST', order, key === undefined ? {} : { 'idempotency-key': key });
  const stats = async (query = ''): Promise<Stats> => (await call(`${ds.url}/stats${query}`, 'GET')).body as unknown as Stats;
  const control = (update: unknown) => call(`${ds.url}/control`, 'PUT', update);

  beforeAll(async () => {
    ds = await startDownstream(['--rate', String(RATE), '--burst', String(BURST)]);
  });

  afterAll(async () => {
    await ds?.kill('SIGTERM');
  });

  beforeEach(async () => {
    // Startup settings and a full bucket, then an empty ledger.
    expect((await call(`${ds.url}/control`, 'DELETE')).status).toBe(200);
    expect((await call(`${ds.url}/stats`, 'DELETE')).status).toBe(200);
  });

  it('logs NDJSON with the port it listens on', () => {
    expect(ds.readyLine).toMatchObject({ msg: 'downstream listening', component: 'downstream', rate: RATE, burst: BURST });
    expect(ds.readyLine.port).toBeGreaterThan(0);
  });

  it('answers a burst over capacity with 429 + Retry-After and does not count it as received', async () => {
    const t0 = performance.now();
    await call(`${ds.url}/control`, 'DELETE'); // fresh, full bucket from here
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => post(`burst-${i}`)));
    const elapsedS = (performance.now() - t0) / 1000;
    const ok = answers.filter((a) => a.status === 200);
    const limited = answers.filter((a) => a.status === 429);
    expect(ok.length + limited.length).toBe(40);
    // The whole burst is admitted; beyond it at most RATE per elapsed second.
    expect(ok.length).toBeGreaterThanOrEqual(BURST);
    expect(ok.length).toBeLessThanOrEqual(BURST + RATE * elapsedS);
    expect(limited.length).toBeGreaterThan(0);
    for (const a of limited) {
      const retryAfter = a.headers.get('retry-after') ?? '';
      expect(retryAfter).toMatch(/^\d+$/);
      expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
      expect(a.body).toMatchObject({ error: { code: 'OVER_CAPACITY' } });
    }
    for (const a of ok) expect(a.body).toEqual({ received: true, duplicate: false });
    const s = await stats();
    expect(s).toMatchObject({ received: ok.length, distinctKeys: ok.length, duplicates: 0, byStatus: { '200': ok.length, '429': limited.length } });
    expect(s.maxPerSecond).toBeLessThanOrEqual(RATE + BURST);
  });

  it('keeps sustained deliveries within rate + burst in every wall-clock second', async () => {
    const rate = 40;
    const burst = 5;
    const target = 120;
    const t0 = performance.now();
    expect((await control({ rate, burst })).body).toMatchObject({ rate, burst });
    let accepted = 0;
    let refused = 0;
    let seq = 0;
    const deadline = Date.now() + 40_000;
    const worker = async () => {
      while (accepted < target && Date.now() < deadline) {
        const a = await post(`sustained-${seq++}`);
        if (a.status === 200) accepted += 1;
        else {
          expect(a.status).toBe(429);
          refused += 1;
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    const elapsedS = (performance.now() - t0) / 1000;
    const s = await stats();
    expect(accepted).toBeGreaterThanOrEqual(target);
    expect(s.received).toBe(accepted);
    expect(s.distinctKeys).toBe(accepted);
    expect(s.byStatus).toEqual({ '200': accepted, '429': refused });
    expect(s.received).toBeLessThanOrEqual(burst + rate * elapsedS);
    expect(s.maxPerSecond).toBeGreaterThan(0);
    expect(s.maxPerSecond).toBeLessThanOrEqual(rate + burst);
    // The tail covers the whole run when it fits in it.
    if (elapsedS < 55) expect(s.perSecond.reduce((n, p) => n + p.count, 0)).toBe(accepted);
    for (const p of s.perSecond) expect(p.count).toBeLessThanOrEqual(rate + burst);
  });

  it('counts duplicates of an Idempotency-Key', async () => {
    const answers = [];
    for (const key of ['dup-a', 'dup-a', 'dup-b', 'dup-a']) answers.push(await post(key));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect(answers.map((a) => a.body.duplicate)).toEqual([false, true, false, true]);
    const s = await stats('?keys=true');
    expect(s).toMatchObject({ received: 4, distinctKeys: 2, duplicates: 2, byStatus: { '200': 4 } });
    expect([...(s.keys ?? [])].sort()).toEqual(['dup-a', 'dup-b']);
    expect((await stats()).keys).toBeUndefined();
  });

  it('DELETE /stats resets everything', async () => {
    await post('reset-a');
    await post('reset-a');
    await post(undefined);
    const before = await stats();
    expect(before).toMatchObject({ received: 2, distinctKeys: 1, duplicates: 1, byStatus: { '200': 2, '400': 1 } });
    const reset = await call(`${ds.url}/stats`, 'DELETE');
    expect(reset.status).toBe(200);
    const empty = { received: 0, distinctKeys: 0, duplicates: 0, maxPerSecond: 0, byStatus: {}, perSecond: [] };
    expect(reset.body).toEqual(empty);
    expect(await stats()).toEqual(empty);
    expect((await post('reset-a')).body).toEqual({ received: true, duplicate: false });
    expect(await stats()).toMatchObject({ received: 1, distinctKeys: 1, duplicates: 0, maxPerSecond: 1 });
  });

  it('refuses orders without an Idempotency-Key or with a bad body, and unknown routes', async () => {
    const missing = await post(undefined);
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({ error: { code: 'MISSING_IDEMPOTENCY_KEY' } });
    const malformed = await call(`${ds.url}/orders`, 'POST', '{"sku":', { 'idempotency-key': 'bad-json' });
    expect(malformed.status).toBe(400);
    expect(malformed.body).toMatchObject({ error: { code: 'MALFORMED_JSON' } });
    const notObject = await call(`${ds.url}/orders`, 'POST', [1, 2], { 'idempotency-key': 'bad-shape' });
    expect(notObject.body).toMatchObject({ error: { code: 'INVALID_ORDER' } });
    expect((await call(`${ds.url}/orders`, 'GET')).status).toBe(405);
    expect((await call(`${ds.url}/nope`, 'GET')).status).toBe(404);
    expect(await stats()).toMatchObject({ received: 0, distinctKeys: 0, byStatus: { '400': 3 } });
  });

  it('changes capacity, latency and faults at runtime through /control', async () => {
    const initial = await call(`${ds.url}/control`, 'GET');
    expect(initial.body).toEqual({ rate: RATE, burst: BURST, latencyMs: 0, failStatus: 500, failRatio: 0, failKeys: [], down: false });

    const down = await control({ down: true });
    expect(down.body).toMatchObject({ down: true, rate: RATE });
    const refused = await post('ctl-down');
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.body).toMatchObject({ error: { code: 'DOWN' } });
    await control({ down: false });
    expect((await post('ctl-up')).status).toBe(200);

    await control({ failRatio: 1, failStatus: 502 });
    const failed = await Promise.all([post('ctl-f1'), post('ctl-f2'), post('ctl-f3')]);
    expect(failed.map((a) => a.status)).toEqual([502, 502, 502]);
    expect(failed[0].body).toMatchObject({ error: { code: 'INJECTED_FAULT' } });

    const invalid = await control({ rate: -1, failRatio: 2, bogus: true });
    expect(invalid.status).toBe(400);
    expect(invalid.body).toMatchObject({ error: { code: 'VALIDATION_FAILED' } });
    expect(((invalid.body.error as { problems: string[] }).problems).length).toBe(3);
    expect((await call(`${ds.url}/control`, 'PUT', 'not json')).status).toBe(400);
    expect((await call(`${ds.url}/control`, 'GET')).body).toMatchObject({ failRatio: 1, failStatus: 502, rate: RATE });

    // Rate 0 = unlimited: far more than the burst gets through at once.
    await control({ rate: 0, failRatio: 0 });
    const unlimited = await Promise.all(Array.from({ length: 3 * BURST }, (_, i) => post(`ctl-free-${i}`)));
    expect(unlimited.every((a) => a.status === 200)).toBe(true);

    // Added service time: only a lower bound, which a slow machine cannot break.
    await control({ latencyMs: 300 });
    const t0 = performance.now();
    expect((await post('ctl-slow')).status).toBe(200);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);

    expect((await call(`${ds.url}/control`, 'DELETE')).body).toEqual(initial.body);
    expect(await stats()).toMatchObject({ received: 2 + 3 * BURST, byStatus: { '200': 2 + 3 * BURST, '502': 3, '503': 1 } });
  });

  it('fails poison orders: configured keys and metadata.simulate', async () => {
    await control({ failKeys: ['poison-1'], failStatus: 422 });
    const poison = [await post('poison-1'), await post('poison-1'), await post('poison-1')];
    expect(poison.map((a) => a.status)).toEqual([422, 422, 422]);
    expect(poison[0].body).toMatchObject({ error: { code: 'POISON_KEY' } });
    expect((await post('healthy-1')).status).toBe(200);
    const simulated = await post('sim-1', { sku: 'SKU-1', metadata: { simulate: '400' } });
    expect(simulated.status).toBe(400);
    expect(simulated.body).toMatchObject({ error: { code: 'SIMULATED' } });
    const unavailable = await post('sim-2', { sku: 'SKU-1', metadata: { simulate: '503' } });
    expect(unavailable.status).toBe(503);
    expect(unavailable.headers.get('retry-after')).toBe('1');
    // Anything that is not an error status is ignored.
    expect((await post('sim-3', { sku: 'SKU-1', metadata: { simulate: 'yes' } })).status).toBe(200);
    const s = await stats('?keys=1');
    expect(s).toMatchObject({ received: 2, distinctKeys: 2, duplicates: 0, byStatus: { '200': 2, '400': 1, '422': 3, '503': 1 } });
    expect([...(s.keys ?? [])].sort()).toEqual(['healthy-1', 'sim-3']);
  });
});

describe('spillway downstream shutdown', () => {
  it('answers in-flight requests on SIGTERM, then exits 0', async () => {
    const ds = await startDownstream(['--latency-ms', '2000', '--rate', '0']);
    try {
      const pending = call(`${ds.url}/orders`, 'POST', { sku: 'SKU-1' }, { 'idempotency-key': 'in-flight' });
      await waitFor(async () => ((await call(`${ds.url}/healthz`, 'GET')).body.inFlight as number) >= 1, { what: 'an order in flight' });
      const exited = ds.kill('SIGTERM');
      const answer = await pending;
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ received: true, duplicate: false });
      expect(await exited).toBe(0);
      expect(ds.logs.some((l) => l.msg === 'stopped' && l.part === 'http')).toBe(true);
    } finally {
      await ds.kill('SIGKILL');
    }
  });
});
