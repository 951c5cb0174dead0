/**
 * HTTP delivery of one order to a downstream (undici pool per origin, keep-alive), with the
 * order's id as Idempotency-Key so any redelivery is recognisable downstream.
 */
import { Pool } from 'undici';
import { classify, classifyError, type Outcome } from './classify.ts';

export interface DeliveryClient {
  deliver(body: string, orderId: string): Promise<Outcome>;
  close(): Promise<void>;
}

export class HttpDelivery implements DeliveryClient {
  private readonly pool: Pool;
  private readonly path: string;

  constructor(
    url: string,
    private readonly timeoutMs: number,
    connections: number,
  ) {
    const u = new URL(url);
    // undici's connect/headers/body timeouts bound every request (no per-request AbortSignal timer).
    this.pool = new Pool(u.origin, { connections, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, connect: { timeout: timeoutMs } });
    this.path = `${u.pathname}${u.search}`;
  }

  async deliver(body: string, orderId: string): Promise<Outcome> {
    try {
      const res = await this.pool.request({
        path: this.path,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': orderId },
        body,
      });
      await res.body.dump();
      return classify(res.statusCode, res.headers['retry-after']);
    } catch (err) {
      return classifyError(err);
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
