/**
 * The broker assembled: logs + Kafka listener + metrics/health HTTP. `main.ts` wires it to
 * the process (config, signals); tests may start one in-process.
 */
import path from 'node:path';
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { loadSaslPlainUsers, type BrokerConfig } from './config.ts';
import type { BrokerContext } from './handlers/context.ts';
import { BrokerMetrics } from './metrics.ts';
import { KafkaServer } from './server/server.ts';
import { startHttp } from './server/http.ts';
import { PlainAuthenticator } from './server/sasl-plain.ts';
import { LogManager, type LogManagerOptions } from './storage/log-manager.ts';
import { DurableOffsetStore } from './storage/offset-store.ts';
import { ProducerIdAllocator } from './storage/producer-ids.ts';
import { GroupCoordinator } from './coordinator/group-coordinator.ts';
import { systemScheduler } from './coordinator/system-scheduler.ts';

export interface BrokerHandle {
  port: number;
  metricsPort: number;
  logs: LogManager;
  stop(): Promise<void>;
}

function clusterIdFor(dataDir: string): string {
  const file = path.join(dataDir, 'cluster-id');
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    const id = randomUUID();
    fs.mkdirSync(dataDir, { recursive: true });
    fs.writeFileSync(file, id);
    return id;
  }
}

export async function startBroker(config: BrokerConfig, log: Logger, now?: () => number): Promise<BrokerHandle> {
  // First, so that a bad users file stops the start before anything is opened.
  const saslUsers = loadSaslPlainUsers(config);
  const logs = new LogManager({
    dataDir: config.dataDir,
    defaultPartitions: config.defaultPartitions,
    fsync: config.fsync,
    fsyncIntervalMs: config.fsyncIntervalMs,
    checkpointIntervalMs: config.checkpointIntervalMs,
    retentionCheckIntervalMs: config.retentionCheckIntervalMs,
    segmentBytes: config.segmentBytes,
    segmentMs: config.segmentMs,
    indexIntervalBytes: config.indexIntervalBytes,
    retentionMs: config.retentionMs,
    retentionBytes: config.retentionBytes,
    now,
    log,
  });
  logs.open();
  const offsets = new DurableOffsetStore(path.join(config.dataDir, 'groups'), log);
  offsets.open();
  const groups = new GroupCoordinator({
    scheduler: systemScheduler(),
    offsets,
    config: { initialRebalanceDelayMs: config.groupInitialRebalanceDelayMs, minSessionTimeoutMs: config.groupMinSessionTimeoutMs, maxSessionTimeoutMs: config.groupMaxSessionTimeoutMs },
  });
  const metrics = new BrokerMetrics(logs);
  // Wired after construction: the metrics need the LogManager for per-partition gauges.
  const hooks = (logs as unknown as { opts: Pick<LogManagerOptions, 'onFsync' | 'onCheckpoint'> }).opts;
  hooks.onFsync = (s, n) => {
    metrics.fsyncDuration.observe(s);
    metrics.fsyncFiles.inc(n);
  };
  hooks.onCheckpoint = (c) => {
    metrics.checkpointDuration.observe(c.seconds);
    if (c.indexFiles > 0) metrics.checkpointSyncs.inc({ kind: 'index' }, c.indexFiles);
    if (c.snapshots > 0) metrics.checkpointSyncs.inc({ kind: 'producer_state' }, c.snapshots);
    if (c.written) metrics.checkpointSyncs.inc({ kind: 'checkpoint' });
  };
  let listenPort = config.port;
  const wildcard = config.host === '0.0.0.0' || config.host === '::';
  const ctx: BrokerContext = {
    logs,
    groups,
    producerIds: new ProducerIdAllocator(config.dataDir),
    config,
    metrics,
    log,
    clusterId: clusterIdFor(config.dataDir),
    sasl: saslUsers === null ? null : new PlainAuthenticator(saslUsers),
    shuttingDown: false,
    advertised: () => ({
      host: config.advertisedHost !== '' ? config.advertisedHost : wildcard ? '127.0.0.1' : config.host,
      port: config.advertisedPort !== 0 ? config.advertisedPort : listenPort,
    }),
  };
  const server = new KafkaServer(ctx);
  listenPort = await server.listen(config.host, config.port);
  logs.startBackgroundTasks();

  metrics.registerGroupLag(ctx);
  const httpServer = await startHttp(ctx, config.metricsHost, config.metricsPort);
  const metricsPort = httpServer.port;
  log.info({ host: config.host, port: listenPort, metricsPort, advertised: ctx.advertised(), sasl: saslUsers === null ? 'off' : `PLAIN (${saslUsers.size} users)`, dataDir: config.dataDir, fsync: config.fsync }, 'broker listening');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      ctx.shuttingDown = true;
      for (const t of logs.topics.values()) for (const p of t.partitions) p.wake();
      groups.close();
      await server.close();
      await logs.close();
      await offsets.close();
      await httpServer.close();
    })());
  return { port: listenPort, metricsPort, logs, stop };
}
