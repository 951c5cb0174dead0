/** `spillway gateway`: reads settings, connects Redis and the buffer, serves the API, stops cleanly. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import { ConfigError, helpText, redactedConfig } from '../../lib/src/config.ts';
import { createLogger } from '../../lib/src/logger.ts';
import { Shutdown } from '../../lib/src/shutdown.ts';
import { Admission } from './admission.ts';
import { buildApp } from './app.ts';
import { gatewaySettings, loadGatewayConfig, type GatewayConfig } from './config.ts';
import { GatewayMetrics } from './metrics.ts';
import { kafkaSasl, KafkajsPublisher } from './publisher.ts';
import { Quotas } from './quotas.ts';

export async function main(argv: readonly string[]): Promise<void> {
  let loaded;
  try {
    loaded = loadGatewayConfig(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`spillway gateway: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (loaded.help) {
    process.stdout.write(`${helpText('gateway', 'The flash-sale order API: quotas in Redis, durable 202s, backlog-aware admission.', gatewaySettings)}\n`);
    return;
  }
  if (loaded.printConfig) {
    process.stdout.write(`${JSON.stringify(redactedConfig(gatewaySettings, loaded.config), null, 2)}\n`);
    return;
  }
  await startGateway(loaded.config);
}

export async function startGateway(config: GatewayConfig): Promise<{ port: number; stop: () => Promise<void> }> {
  const log = createLogger('gateway', config.logLevel);
  const shutdown = new Shutdown(log);
  const redis = new Redis(config.redisUrl, { enableAutoPipelining: true, maxRetriesPerRequest: 1, connectTimeout: 2000, lazyConnect: false });
  redis.on('error', (err: Error) => log.warn({ err: err.message }, 'redis error'));
  const metrics = new GatewayMetrics();
  const publisher = new KafkajsPublisher({
    brokers: config.kafkaBrokers.split(','),
    clientId: 'spillway-gateway',
    lingerMs: config.lingerMs,
    maxBatch: config.maxBatch,
    requestTimeoutMs: config.appendTimeoutMs,
    sasl: kafkaSasl(config),
    log,
  });
  publisher.onBatch = (n) => metrics.batch.observe(n);
  await publisher.connect();
  await publisher.ensureTopic(config.ordersTopic, config.ordersPartitions);
  const quotas = new Quotas(redis, { idempotencyTtlS: config.idempotencyTtlS, requireKnownSku: config.requireKnownSku });
  const admission = new Admission(redis, { budgetS: config.backlogBudgetS, resumeS: config.backlogResumeS, maxOrders: config.backlogMaxOrders }, log);
  admission.start();
  const limiter =
    config.rateLimitPoints > 0
      ? new RateLimiterRedis({
          storeClient: redis,
          keyPrefix: 'spw:rl',
          points: config.rateLimitPoints,
          duration: config.rateLimitWindowS,
          // While Redis is unreachable, limit per process instead of failing every request.
          insuranceLimiter: new RateLimiterMemory({ points: config.rateLimitPoints, duration: config.rateLimitWindowS }),
        })
      : null;
  let stopping = false;
  const app = buildApp({ config, redis, publisher, quotas, admission, limiter, metrics, log, isStopping: () => stopping });
  const server = http.createServer({ keepAliveTimeout: 5000, headersTimeout: 10_000, requestTimeout: 30_000 }, app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ host: config.host, port, kafkaBrokers: config.kafkaBrokers, topic: config.ordersTopic }, 'gateway listening');

  shutdown.add('redis', async () => {
    await redis.quit().catch(() => undefined);
  });
  shutdown.add('publisher', () => publisher.close());
  shutdown.add('http', async () => {
    stopping = true;
    admission.stop();
    // Stop accepting connections; in-flight requests (and their appends) finish first.
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
  });
  shutdown.installSignalHandlers();
  return { port, stop: () => shutdown.stop() };
}
