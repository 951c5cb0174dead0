/** Drainer metrics (prom-client), one registry per process. */
import client from 'prom-client';

export class DrainerMetrics {
  readonly registry = new client.Registry();
  readonly deliveries: client.Counter<'downstream' | 'outcome'>;
  readonly latency: client.Histogram<'downstream'>;
  readonly retries: client.Counter<'downstream'>;
  readonly dlq: client.Counter<'downstream'>;
  readonly redriven: client.Counter<'downstream'>;
  readonly deferred: client.Counter<'downstream' | 'reason'>;
  readonly rateLimit: client.Gauge<'downstream'>;
  readonly windowState: client.Gauge<'downstream'>;
  readonly aimdFactor: client.Gauge<'downstream'>;
  readonly breakerOpen: client.Gauge<'downstream'>;
  readonly lagMessages: client.Gauge<'downstream' | 'partition'>;
  readonly lagSeconds: client.Gauge<'downstream' | 'partition'>;
  readonly backlog: client.Gauge<'downstream'>;
  readonly eta: client.Gauge<'downstream'>;

  constructor() {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry, prefix: 'spillway_drainer_' });
    this.deliveries = new client.Counter({ name: 'spillway_drainer_deliveries_total', help: 'Delivery attempts by outcome (delivered, pushback, failed, dead_lettered, skipped_rejected)', labelNames: ['downstream', 'outcome'], registers });
    this.latency = new client.Histogram({
      name: 'spillway_drainer_delivery_duration_seconds',
      help: 'Downstream response time per delivery attempt',
      labelNames: ['downstream'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.retries = new client.Counter({ name: 'spillway_drainer_retries_total', help: 'Deliveries scheduled for retry after a failure', labelNames: ['downstream'], registers });
    this.dlq = new client.Counter({ name: 'spillway_drainer_dead_letters_total', help: 'Orders sent to the dead-letter topic', labelNames: ['downstream'], registers });
    this.redriven = new client.Counter({ name: 'spillway_drainer_redriven_total', help: 'Dead letters re-driven', labelNames: ['downstream'], registers });
    this.deferred = new client.Counter({
      name: 'spillway_drainer_jobs_deferred_total',
      help: 'Jobs put back for a later try without using an attempt (reason: dead_letter_failed, processing_error)',
      labelNames: ['downstream', 'reason'],
      registers,
    });
    this.rateLimit = new client.Gauge({ name: 'spillway_drainer_rate_limit', help: 'Deliveries per second currently permitted (fleet-wide)', labelNames: ['downstream'], registers });
    this.windowState = new client.Gauge({ name: 'spillway_drainer_window_open', help: '1 when deliveries are permitted now, 0 when paused (window or manual)', labelNames: ['downstream'], registers });
    this.aimdFactor = new client.Gauge({ name: 'spillway_drainer_aimd_factor', help: 'Share of the configured rate permitted after downstream pushback', labelNames: ['downstream'], registers });
    this.breakerOpen = new client.Gauge({ name: 'spillway_drainer_circuit_open', help: '1 while the circuit breaker holds deliveries', labelNames: ['downstream'], registers });
    this.lagMessages = new client.Gauge({ name: 'spillway_drainer_lag_messages', help: 'Orders not yet delivered or dead-lettered, per partition', labelNames: ['downstream', 'partition'], registers });
    this.lagSeconds = new client.Gauge({ name: 'spillway_drainer_lag_seconds', help: 'Age of the oldest undelivered order, per partition', labelNames: ['downstream', 'partition'], registers });
    this.backlog = new client.Gauge({ name: 'spillway_drainer_backlog_orders', help: 'Orders waiting for a downstream', labelNames: ['downstream'], registers });
    this.eta = new client.Gauge({ name: 'spillway_drainer_drain_eta_seconds', help: 'Backlog divided by the permitted rate', labelNames: ['downstream'], registers });
  }
}
