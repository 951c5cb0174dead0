import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Outcome } from '../src/classify.ts';
import { DeliveryLanes, HttpDelivery, type DeliveryClient, type OutcomeSink } from '../src/delivery.ts';

/** A client that holds every delivery until the test answers it. */
class HeldClient implements DeliveryClient {
  readonly held: { orderId: string; sink: OutcomeSink; index: number }[] = [];
  maxHeld = 0;

  deliver(_body: string, orderId: string, sink: OutcomeSink, index: number): void {
    this.held.push({ orderId, sink, index });
    this.maxHeld = Math.max(this.maxHeld, this.held.length);
  }

  /** Answers the oldest held delivery. */
  answer(outcome: Outcome = { kind: 'delivered', status: 200 }): string {
    const h = this.held.shift();
    if (!h) throw new Error('nothing held');
    h.sink.settle(h.index, outcome);
    return h.orderId;
  }

  async close(): Promise<void> {}
}

const orders = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => ({ orderId: `${prefix}${i}`, body: `{"orderId":"${prefix}${i}"}` }));
const turn = () => new Promise((r) => setImmediate(r));

describe('DeliveryLanes', () => {
  it('keeps at most `concurrency` deliveries in flight across jobs, sending jobs in the order they asked', async () => {
    const client = new HeldClient();
    const rtts: number[] = [];
    const lanes = new DeliveryLanes(client, 3, (ms) => rtts.push(ms));
    const a = lanes.send(orders('a', 4), performance.now());
    const b = lanes.send(orders('b', 2), performance.now());
    expect(client.held.map((h) => h.orderId)).toEqual(['a0', 'a1', 'a2']);
    const sent: string[] = [];
    while (client.held.length > 0) {
      sent.push(client.answer());
      await turn();
    }
    expect(sent).toEqual(['a0', 'a1', 'a2', 'a3', 'b0', 'b1']);
    expect(client.maxHeld).toBe(3);
    expect(lanes.busy).toBe(0);
    expect(rtts).toHaveLength(6);
    const [sa, sb] = await Promise.all([a, b]);
    expect(sa.outcomes.map((o) => o.kind)).toEqual(['delivered', 'delivered', 'delivered', 'delivered']);
    expect(sb.outcomes).toHaveLength(2);
  });

  it("puts each outcome at its order's index, whatever order the answers come in", async () => {
    const client = new HeldClient();
    const lanes = new DeliveryLanes(client, 10, () => undefined);
    const p = lanes.send(orders('x', 3), performance.now());
    const [h0, h1, h2] = client.held.splice(0);
    h2.sink.settle(h2.index, { kind: 'dead', status: 400, reason: 'HTTP 400' });
    h0.sink.settle(h0.index, { kind: 'delivered', status: 201 });
    h1.sink.settle(h1.index, { kind: 'pushback', status: 429, retryAfterMs: 1000 });
    const s = await p;
    expect(s.outcomes.map((o) => o.kind)).toEqual(['delivered', 'pushback', 'dead']);
    expect(s.arrivals).toBeGreaterThanOrEqual(0);
  });

  it('resolves a job of no orders at once', async () => {
    const lanes = new DeliveryLanes(new HeldClient(), 1, () => undefined);
    expect((await lanes.send([], performance.now())).outcomes).toEqual([]);
  });
});

describe('HttpDelivery (real HTTP)', () => {
  let server: http.Server;
  let base = '';
  const seen: { key: string | undefined; body: string }[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ key: req.headers['idempotency-key'] as string | undefined, body });
        if (req.url === '/ok') res.writeHead(201).end('created');
        else if (req.url === '/busy') res.writeHead(429, { 'retry-after': '2' }).end();
        else if (req.url === '/down') res.writeHead(503).end();
        else if (req.url === '/bad') res.writeHead(400).end('no');
        else if (req.url === '/slow') setTimeout(() => res.writeHead(200).end(), 2_000);
        else res.writeHead(404).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  async function deliverOnce(url: string, timeoutMs = 5_000): Promise<Outcome> {
    const d = new HttpDelivery(url, timeoutMs, 2);
    try {
      const lanes = new DeliveryLanes(d, 2, () => undefined);
      return (await lanes.send([{ orderId: 'o-1', body: '{"orderId":"o-1"}' }], performance.now())).outcomes[0];
    } finally {
      await d.close();
    }
  }

  it('POSTs the body with the order id as Idempotency-Key and classifies the answer', async () => {
    expect(await deliverOnce(`${base}/ok`)).toEqual({ kind: 'delivered', status: 201 });
    expect(seen.at(-1)).toEqual({ key: 'o-1', body: '{"orderId":"o-1"}' });
    expect(await deliverOnce(`${base}/busy`)).toEqual({ kind: 'pushback', status: 429, retryAfterMs: 2000 });
    expect(await deliverOnce(`${base}/down`)).toEqual({ kind: 'retry', status: 503, reason: 'HTTP 503' });
    expect(await deliverOnce(`${base}/bad`)).toEqual({ kind: 'dead', status: 400, reason: 'HTTP 400' });
  });

  it('a timeout or a refused connection is a retry, not a crash', async () => {
    const slow = await deliverOnce(`${base}/slow`, 300);
    expect(slow.kind).toBe('retry');
    // A port nothing listens on: bind one, note it, close it.
    const probe = http.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const refused = await deliverOnce(`http://127.0.0.1:${port}/x`);
    expect(refused).toMatchObject({ kind: 'retry', status: null });
    expect((refused as { reason: string }).reason).toMatch(/^network: /);
  });
});
