/** `spillway drainer`: reads settings and downstreams, drains each, serves /metrics, stops cleanly. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { ConfigError, helpText, redactedConfig } from '../../lib/src/config.ts';
import { createLogger } from '../../lib/src/logger.ts';
import { Shutdown } from '../../lib/src/shutdown.ts';
import { drainerSettings, loadDownstreams, loadDrainerConfig, type DownstreamConfig, type DrainerSettings } from './config.ts';
import { HttpDelivery } from './delivery.ts';
import { Downstream } from './downstream.ts';
import { kafkaSasl } from '../../lib/src/kafka-sasl.ts';
import { KafkajsLogClient } from './log-client.ts';
import { DrainerMetrics } from './metrics.ts';

export async function main(argv: readonly string[]): Promise<void> {
  let settings: DrainerSettings;
  let downstreams: DownstreamConfig[] = [];
  try {
    const loaded = loadDrainerConfig(argv);
    if (loaded.help) {
      process.stdout.write(`${helpText('drainer', 'Delivers buffered orders to each downstream at the rate it can bear.', drainerSettings)}\n`);
      return;
    }
    settings = loaded.config;
    if (settings.config === '') throw new ConfigError(['--config: a downstreams file is required (SPILLWAY_DRAINER_CONFIG)']);
    downstreams = loadDownstreams(settings.config);
    if (loaded.printConfig) {
      process.stdout.write(`${JSON.stringify({ ...redactedConfig(drainerSettings, settings), downstreams }, null, 2)}\n`);
      return;
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`spillway drainer: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  await startDrainer(settings, downstreams);
}

export async function startDrainer(settings: DrainerSettings, downstreams: DownstreamConfig[]): Promise<{ metricsPort: number; stop: () => Promise<void> }> {
  const log = createLogger('drainer', settings.logLevel);
  const shutdown = new Shutdown(log);
  const redis = new Redis(settings.redisUrl, { enableAutoPipelining: true, maxRetriesPerRequest: 3 });
  const bull = new Redis(settings.redisUrl, { maxRetriesPerRequest: null });
  for (const r of [redis, bull]) r.on('error', (err: Error) => log.warn({ err: err.message }, 'redis error'));
  const logClient = new KafkajsLogClient(settings.kafkaBrokers.split(','), 'spillway-drainer', kafkaSasl(settings));
  await logClient.ensureTopic(settings.dlqTopic, 1).catch((err: unknown) => log.warn({ err: (err as Error).message }, 'could not create the DLQ topic'));
  const metrics = new DrainerMetrics();
  const parts = downstreams.map(
    (config) =>
      new Downstream({
        config,
        dlqTopic: settings.dlqTopic,
        redis,
        bullConnection: bull,
        logClient,
        delivery: new HttpDelivery(config.url, config.timeoutMs, Math.min(256, config.concurrency)),
        metrics,
        log,
      }),
  );
  let stopping = false;
  const server = http.createServer((req, res) => {
    if (req.url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(text);
        },
        () => {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end('{"error":{"code":"INTERNAL","message":"metrics failed"}}');
        },
      );
      return;
    }
    if (req.url === '/healthz') {
      res.writeHead(stopping ? 503 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: stopping ? 'stopping' : 'ok', downstreams: parts.map((p) => ({ name: p.queue.name, ...p.state })) }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":{"code":"NOT_FOUND","message":"no such endpoint"}}');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.metricsPort, settings.metricsHost, () => resolve());
  });
  const metricsPort = (server.address() as AddressInfo).port;
  shutdown.add('redis', async () => {
    await Promise.allSettled([redis.quit(), bull.quit()]);
  });
  shutdown.add('kafka', () => logClient.close());
  shutdown.add('http', () => new Promise<void>((resolve) => server.close(() => resolve())));
  shutdown.add('downstreams', async () => {
    stopping = true;
    await Promise.all(parts.map((p) => p.stop()));
  });
  shutdown.installSignalHandlers();
  // Each downstream's consumer runs until stopped; start them all.
  for (const p of parts) await p.start();
  log.info({ metricsPort, downstreams: downstreams.map((d) => d.name) }, 'drainer running');
  return { metricsPort, stop: () => shutdown.stop() };
}
