/** `spillway gateway`: reads settings, connects Redis and the buffer, serves the API, stops cleanly. */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';
import { ConfigError, helpText, redactedConfig } from '../../lib/src/config.ts';
import { createLogger } from '../../lib/src/logger.ts';
import { Shutdown } from '../../lib/src/shutdown.ts';
import { Admission } from './admission.ts';
import { buildApp } from './app.ts';
import { HttpError, sendError } from './http-errors.ts';
import { gatewaySettings, loadGatewayConfig, type GatewayConfig } from './config.ts';
import { GatewayMetrics } from './metrics.ts';
import { kafkaSasl } from '../../lib/src/kafka-sasl.ts';
import { KafkajsPublisher } from './publisher.ts';
import { INTAKE_COMMAND, Quotas } from './quotas.ts';

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
  const redis = new Redis(config.redisUrl, { enableAutoPipelining: true, autoPipeliningIgnoredCommands: [INTAKE_COMMAND], maxRetriesPerRequest: 1, connectTimeout: 2000, lazyConnect: false });
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
  const server = createGatewayServer(app, config);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ host: config.host, port, kafkaBrokers: config.kafkaBrokers, topic: config.ordersTopic }, 'gateway listening');

  shutdown.add('redis', async () => {
    quotas.flushNow();
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

export type ServerLimits = Pick<GatewayConfig, 'headersTimeoutMs' | 'requestTimeoutMs' | 'keepAliveTimeoutMs' | 'maxRequestsPerSocket' | 'maxConnections'>;

/**
 * The HTTP server around the app, hardened against slow and greedy clients: headers and whole
 * requests must arrive within their timeouts (408, then the connection is closed), idle
 * keep-alive connections and long-lived ones are closed, connections beyond the cap are closed
 * on accept. Errors node:http answers itself (malformed requests, oversized headers, timeouts,
 * CONNECT) get the JSON error shape too, never node's bare status line.
 */
export function createGatewayServer(app: http.RequestListener, limits: ServerLimits): http.Server {
  const server = http.createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // How often node checks the two timeouts above (its default, 30 s, would let a slowloris
      // hold a socket up to 30 s past them).
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headersTimeoutMs / 2))),
    },
    app,
  );
  server.maxRequestsPerSocket = limits.maxRequestsPerSocket;
  if (limits.maxConnections > 0) server.maxConnections = limits.maxConnections;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // As node's own handler: answer only when no response is under way on this socket.
    const inFlight = (socket as Duplex & { _httpMessage?: http.ServerResponse | null })._httpMessage;
    if (err.code !== 'ECONNRESET' && socket.writable && !inFlight?.headersSent) {
      const [status, code, message] =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? ([408, 'REQUEST_TIMEOUT', 'the request did not arrive in time'] as const)
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? ([431, 'HEADERS_TOO_LARGE', 'the request line and headers are too large'] as const)
            : ([400, 'BAD_REQUEST', 'the request could not be parsed'] as const);
      endWith(socket, rawJsonError(status, code, message));
      return;
    }
    socket.destroy();
  });
  // An Expect other than 100-continue: node would answer a bare 417.
  server.on('checkExpectation', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    sendError(res, new HttpError(417, 'EXPECTATION_FAILED', 'only Expect: 100-continue is supported'));
  });
  // CONNECT (a proxy request) is not for us: without this listener node just drops the socket.
  server.on('connect', (_req: http.IncomingMessage, socket: Socket) => {
    endWith(socket, rawJsonError(405, 'METHOD_NOT_ALLOWED', 'CONNECT is not supported'));
  });
  return server;
}

function rawJsonError(status: number, code: string, message: string): string {
  const body = JSON.stringify({ error: { code, message } });
  return `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/** Writes a last answer and closes the socket once it is flushed (or after a second at most). */
function endWith(socket: Duplex, answer: string): void {
  socket.on('error', () => undefined);
  const timer = setTimeout(() => socket.destroy(), 1000);
  timer.unref();
  socket.end(answer, () => {
    clearTimeout(timer);
    socket.destroy();
  });
}
