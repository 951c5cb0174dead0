/**
 * The broker assembled: logs + Kafka listener + metrics/health HTTP. `main.ts` wires it to
 * the process (config, signals); tests may start one in-process.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { BrokerConfig } from './config.ts';
import type { BrokerContext } from './handlers/context.ts';
import { BrokerMetrics } from './metrics.ts';
import { KafkaServer } from './server/server.ts';
import { LogManager } from './storage/log-manager.ts';
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
  (logs as unknown as { opts: { onFsync: (s: number, n: number) => void } }).opts.onFsync = (s, n) => {
    metrics.fsyncDuration.observe(s);
    metrics.fsyncFiles.inc(n);
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
    shuttingDown: false,
    advertised: () => ({
      host: config.advertisedHost !== '' ? config.advertisedHost : wildcard ? '127.0.0.1' : config.host,
      port: config.advertisedPort !== 0 ? config.advertisedPort : listenPort,
    }),
  };
  const server = new KafkaServer(ctx);
  listenPort = await server.listen(config.host, config.port);
  logs.startBackgroundTasks();

  const httpServer = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      metrics.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(body);
        },
        (err: unknown) => {
          log.error({ err }, 'metrics collection failed');
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end('{"error":{"code":"METRICS_FAILED","message":"metrics collection failed"}}');
        },
      );
      return;
    }
    if (req.method === 'GET' && req.url === '/healthz') {
      res.writeHead(ctx.shuttingDown ? 503 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: ctx.shuttingDown ? 'stopping' : 'ok', topics: logs.topics.size }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"NOT_FOUND","message":"no such endpoint"}}');
  });
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(config.metricsPort, config.metricsHost, () => resolve());
  });
  const metricsPort = (httpServer.address() as AddressInfo).port;
  log.info({ host: config.host, port: listenPort, metricsPort, advertised: ctx.advertised(), dataDir: config.dataDir, fsync: config.fsync }, 'broker listening');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      ctx.shuttingDown = true;
      for (const t of logs.topics.values()) for (const p of t.partitions) p.wake();
      groups.close();
      await server.close();
      await logs.close();
      await offsets.close();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      httpServer.closeAllConnections();
    })());
  return { port: listenPort, metricsPort, logs, stop };
}
