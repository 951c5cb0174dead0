/** Broker metrics (prom-client), one registry per broker instance. */
import client from 'prom-client';
import type { LogManager } from './storage/log-manager.ts';
import { bufferPool } from './storage/buffer-pool.ts';
import type { BrokerContext } from './handlers/context.ts';
import { listGroupSummaries, type GroupSummary } from './admin/group-admin.ts';

export class BrokerMetrics {
  readonly registry = new client.Registry();
  readonly bytesIn: client.Counter<'topic'>;
  readonly messagesIn: client.Counter<'topic'>;
  readonly bytesOut: client.Counter<'topic'>;
  readonly messagesOut: client.Counter<'topic'>;
  readonly requests: client.Counter<'api' | 'outcome'>;
  readonly requestDuration: client.Histogram<'api'>;
  readonly fsyncDuration: client.Histogram;
  readonly checkpointDuration: client.Histogram;
  readonly checkpointSyncs: client.Counter;
  readonly fsyncFiles: client.Counter;
  readonly connections: client.Gauge;
  readonly protocolErrors: client.Counter<'reason'>;
  readonly produceErrors: client.Counter<'error'>;
  readonly authFailures: client.Counter<'reason'>;
  readonly authSuccesses: client.Counter;
  readonly bufferedRequestBytes: client.Gauge;

  constructor(logs: LogManager) {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry, prefix: 'spillway_broker_' });
    this.bytesIn = new client.Counter({ name: 'spillway_broker_bytes_in_total', help: 'Record batch bytes appended', labelNames: ['topic'], registers });
    this.messagesIn = new client.Counter({ name: 'spillway_broker_messages_in_total', help: 'Records appended', labelNames: ['topic'], registers });
    this.bytesOut = new client.Counter({ name: 'spillway_broker_bytes_out_total', help: 'Record batch bytes served to fetches', labelNames: ['topic'], registers });
    this.messagesOut = new client.Counter({ name: 'spillway_broker_messages_out_total', help: 'Offsets served to fetches', labelNames: ['topic'], registers });
    this.requests = new client.Counter({ name: 'spillway_broker_requests_total', help: 'Requests by API and outcome', labelNames: ['api', 'outcome'], registers });
    this.requestDuration = new client.Histogram({
      name: 'spillway_broker_request_duration_seconds',
      help: 'Request latency by API (fetch includes long-poll wait)',
      labelNames: ['api'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.fsyncDuration = new client.Histogram({
      name: 'spillway_broker_fsync_duration_seconds',
      help: 'Duration of one group-commit fdatasync round',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.fsyncFiles = new client.Counter({ name: 'spillway_broker_fsync_files_total', help: 'Files fdatasync\'d', registers });
    this.checkpointDuration = new client.Histogram({
      name: 'spillway_broker_checkpoint_duration_seconds',
      help: 'Duration of one recovery checkpoint (syncs only what changed since the previous one)',
      buckets: [0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers,
    });
    this.checkpointSyncs = new client.Counter({
      name: 'spillway_broker_checkpoint_syncs_total',
      help: 'Files synced by recovery checkpoints, by kind: index (.index/.timeindex fdatasync), producer_state (snapshot written), checkpoint (the checkpoint file rewritten)',
      labelNames: ['kind'],
      registers,
    });
    this.connections = new client.Gauge({ name: 'spillway_broker_connections', help: 'Open client connections', registers });
    this.protocolErrors = new client.Counter({ name: 'spillway_broker_protocol_errors_total', help: 'Connections closed for bad input, by reason', labelNames: ['reason'], registers });
    this.produceErrors = new client.Counter({ name: 'spillway_broker_produce_errors_total', help: 'Produce partitions refused, by Kafka error', labelNames: ['error'], registers });
    this.authFailures = new client.Counter({
      name: 'spillway_broker_authentication_failures_total',
      help: 'SASL authentications refused (bad_credentials, malformed, unsupported_mechanism, illegal_state, unauthenticated_request); each closes its connection',
      labelNames: ['reason'],
      registers,
    });
    this.authSuccesses = new client.Counter({ name: 'spillway_broker_authentications_total', help: 'Successful SASL authentications', registers });
    this.bufferedRequestBytes = new client.Gauge({ name: 'spillway_broker_buffered_request_bytes', help: 'Memory reserved for partly received request frames, all connections', registers });
    new client.Counter({
      name: 'spillway_broker_buffer_pool_total',
      help: 'Large buffers (fetch reads, produce request frames) by source: reused (from the pool) or allocated (pool empty); sizes under 4 KiB or over 16 MiB are not pooled',
      labelNames: ['source'],
      registers,
      collect() {
        const s = bufferPool.stats();
        this.reset();
        this.inc({ source: 'reused' }, s.reused);
        this.inc({ source: 'allocated' }, s.allocated);
      },
    });
    new client.Gauge({
      name: 'spillway_broker_buffer_pool_free_bytes',
      help: 'Bytes of pooled buffers kept for reuse',
      registers,
      collect() {
        this.set(bufferPool.stats().freeBytes);
      },
    });
    const partitionGauge = (name: string, help: string, read: (p: { highWatermark: number; logStartOffset: number; sizeBytes: number; segments: unknown[] }) => number) =>
      new client.Gauge({
        name,
        help,
        labelNames: ['topic', 'partition'],
        registers,
        collect() {
          this.reset();
          for (const t of logs.topics.values()) {
            for (const p of t.partitions) this.set({ topic: t.name, partition: String(p.partition) }, read(p));
          }
        },
      });
    partitionGauge('spillway_broker_log_end_offset', 'Durable log end offset (high watermark) per partition', (p) => p.highWatermark);
    partitionGauge('spillway_broker_log_start_offset', 'First retained offset per partition', (p) => p.logStartOffset);
    partitionGauge('spillway_broker_log_size_bytes', 'Bytes on disk per partition', (p) => p.sizeBytes);
    partitionGauge('spillway_broker_log_segments', 'Segments per partition', (p) => p.segments.length);
  }

  /** Consumer lag per group and partition, computed at scrape time from committed offsets and the logs. */
  registerGroupLag(ctx: BrokerContext): void {
    const registers = [this.registry];
    // Both gauges are collected concurrently during one scrape: share one computation.
    let shared: Promise<GroupSummary[]> | null = null;
    const summaries = () => {
      if (shared === null) {
        shared = listGroupSummaries(ctx);
        const clear = () => setTimeout(() => (shared = null), 100).unref();
        shared.then(clear, clear);
      }
      return shared;
    };
    const labelsOf = (g: GroupSummary, p: GroupSummary['partitions'][number]) => ({ group: g.groupId, topic: p.topic, partition: String(p.partition) });
    new client.Gauge({
      name: 'spillway_broker_group_lag_messages',
      help: 'Records between a group\'s committed offset and the log end, per partition',
      labelNames: ['group', 'topic', 'partition'],
      registers,
      async collect() {
        this.reset();
        for (const g of await summaries()) for (const p of g.partitions) this.set(labelsOf(g, p), p.lag);
      },
    });
    new client.Gauge({
      name: 'spillway_broker_group_lag_seconds',
      help: 'Age of the oldest record a group has not consumed yet (0 when caught up), per partition',
      labelNames: ['group', 'topic', 'partition'],
      registers,
      async collect() {
        this.reset();
        for (const g of await summaries()) for (const p of g.partitions) this.set(labelsOf(g, p), p.lagSeconds);
      },
    });
  }
}
