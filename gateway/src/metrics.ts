/** Gateway metrics (prom-client), one registry per app instance. */
import client from 'prom-client';

export class GatewayMetrics {
  readonly registry = new client.Registry();
  readonly requests: client.Counter<'route' | 'status' | 'code'>;
  readonly intake: client.Histogram<'outcome'>;
  readonly orders: client.Counter<'outcome'>;
  readonly batch: client.Histogram;
  readonly stockRemaining: client.Gauge<'sku'>;
  readonly shedding: client.Gauge;

  constructor() {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry, prefix: 'spillway_gateway_' });
    this.requests = new client.Counter({ name: 'spillway_gateway_requests_total', help: 'HTTP requests by route, status and error code', labelNames: ['route', 'status', 'code'], registers });
    this.intake = new client.Histogram({
      name: 'spillway_gateway_intake_duration_seconds',
      help: 'Time from request to answer for POST /v1/orders, by outcome',
      labelNames: ['outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.orders = new client.Counter({ name: 'spillway_gateway_orders_total', help: 'Orders by outcome (accepted or the rejection code)', labelNames: ['outcome'], registers });
    this.batch = new client.Histogram({
      name: 'spillway_gateway_produce_batch_records',
      help: 'Records coalesced into one produce request',
      buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000],
      registers,
    });
    this.stockRemaining = new client.Gauge({ name: 'spillway_gateway_stock_remaining', help: 'Units left for sale per loaded SKU (from Redis)', labelNames: ['sku'], registers });
    this.shedding = new client.Gauge({ name: 'spillway_gateway_backlog_shedding', help: '1 while new orders are refused with BACKLOG_FULL', registers });
  }
}
