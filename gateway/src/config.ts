/** Settings of `spillway gateway`: every one has a flag and an env var. */
import { z } from 'zod';
import { bool, ConfigError, loadConfig, nonNegativeInt, port, positiveInt, setting, type ConfigOf } from '../../lib/src/config.ts';
import { checkKafkaSasl, kafkaSaslSettings } from '../../lib/src/kafka-sasl.ts';

export const gatewaySettings = {
  host: setting({ env: 'SPILLWAY_GATEWAY_HOST', flag: 'host', schema: z.string().min(1), default: '127.0.0.1', description: 'address the HTTP API binds to' }),
  port: setting({ env: 'SPILLWAY_GATEWAY_PORT', flag: 'port', schema: port, default: 8080, description: 'HTTP port (0 = any free port)' }),
  redisUrl: setting({ env: 'REDIS_URL', flag: 'redis-url', schema: z.string().url(), default: 'redis://127.0.0.1:6379', description: 'Redis for quotas, idempotency, limits and status', secret: false }),
  kafkaBrokers: setting({
    env: 'KAFKA_BROKERS',
    flag: 'kafka-brokers',
    schema: z.string().regex(/^[^,\s]+:\d+(,[^,\s]+:\d+)*$/, 'a comma-separated list of host:port'),
    default: '127.0.0.1:9092',
    description: 'Kafka bootstrap servers (the embedded broker or a real Kafka cluster)',
  }),
  ...kafkaSaslSettings,
  ordersTopic: setting({ env: 'SPILLWAY_ORDERS_TOPIC', flag: 'orders-topic', schema: z.string().regex(/^[a-zA-Z0-9._-]{1,249}$/), default: 'orders', description: 'topic orders are appended to' }),
  ordersPartitions: setting({ env: 'SPILLWAY_ORDERS_PARTITIONS', flag: 'orders-partitions', schema: positiveInt.max(1024), default: 12, description: 'partitions when the gateway creates the orders topic' }),
  adminToken: setting({ env: 'SPILLWAY_ADMIN_TOKEN', flag: 'admin-token', schema: z.string(), default: '', description: 'bearer token for /v1/admin (empty = admin API disabled)', secret: true }),
  requireApiKey: setting({ env: 'SPILLWAY_REQUIRE_API_KEY', flag: 'require-api-key', schema: bool, default: false, description: 'require a client API key (X-API-Key) on /v1/orders and /v1/topics' }),
  requireKnownSku: setting({ env: 'SPILLWAY_REQUIRE_KNOWN_SKU', flag: 'require-known-sku', schema: bool, default: false, description: 'refuse orders for SKUs never loaded through the admin API (otherwise unlimited)' }),
  rateLimitPoints: setting({ env: 'SPILLWAY_RATE_LIMIT', flag: 'rate-limit', schema: nonNegativeInt, default: 50, description: 'requests per client (API key or IP) per rate window (0 = no limit)' }),
  rateLimitWindowS: setting({ env: 'SPILLWAY_RATE_LIMIT_WINDOW_S', flag: 'rate-limit-window-s', schema: positiveInt, default: 1, description: 'rate window in seconds' }),
  bodyLimitBytes: setting({ env: 'SPILLWAY_BODY_LIMIT_BYTES', flag: 'body-limit-bytes', schema: positiveInt, default: 16 * 1024, description: 'largest order body (413 above)' }),
  recordsBodyLimitBytes: setting({ env: 'SPILLWAY_RECORDS_BODY_LIMIT_BYTES', flag: 'records-body-limit-bytes', schema: positiveInt, default: 1024 * 1024, description: 'largest body of POST /v1/topics/:topic/records' }),
  appendTimeoutMs: setting({ env: 'SPILLWAY_APPEND_TIMEOUT_MS', flag: 'append-timeout-ms', schema: positiveInt, default: 5000, description: 'how long an append may take before 503 BUFFER_UNAVAILABLE' }),
  lingerMs: setting({ env: 'SPILLWAY_LINGER_MS', flag: 'linger-ms', schema: nonNegativeInt, default: 0, description: 'extra wait to coalesce concurrent orders into one produce request (0 = only what queued during the previous one)' }),
  maxBatch: setting({ env: 'SPILLWAY_MAX_BATCH', flag: 'max-batch', schema: positiveInt, default: 2000, description: 'most records in one produce request' }),
  idempotencyTtlS: setting({ env: 'SPILLWAY_IDEMPOTENCY_TTL_S', flag: 'idempotency-ttl-s', schema: positiveInt.min(86_400), default: 86_400, description: 'how long Idempotency-Key answers are kept (at least 24 h)' }),
  orderStatusTtlS: setting({ env: 'SPILLWAY_ORDER_STATUS_TTL_S', flag: 'order-status-ttl-s', schema: positiveInt, default: 7 * 86_400, description: 'how long GET /v1/orders/:id can find an order' }),
  backlogBudgetS: setting({ env: 'SPILLWAY_BACKLOG_BUDGET_S', flag: 'backlog-budget-s', schema: positiveInt, default: 3 * 86_400, description: 'shed new orders (503 BACKLOG_FULL) when the drain ETA exceeds this' }),
  backlogResumeS: setting({ env: 'SPILLWAY_BACKLOG_RESUME_S', flag: 'backlog-resume-s', schema: positiveInt, default: Math.floor(2.5 * 86_400), description: 'accept again once the drain ETA is below this' }),
  backlogMaxOrders: setting({ env: 'SPILLWAY_BACKLOG_MAX_ORDERS', flag: 'backlog-max-orders', schema: nonNegativeInt, default: 0, description: 'also shed when the backlog exceeds this many orders (0 = no count limit)' }),
  headersTimeoutMs: setting({ env: 'SPILLWAY_HEADERS_TIMEOUT_MS', flag: 'headers-timeout-ms', schema: positiveInt, default: 10_000, description: 'a request whose headers take longer is answered 408 and its connection closed (slowloris)' }),
  requestTimeoutMs: setting({ env: 'SPILLWAY_REQUEST_TIMEOUT_MS', flag: 'request-timeout-ms', schema: positiveInt, default: 30_000, description: 'a request (headers and body) taking longer to arrive is answered 408 and its connection closed; at least --headers-timeout-ms' }),
  keepAliveTimeoutMs: setting({ env: 'SPILLWAY_KEEP_ALIVE_TIMEOUT_MS', flag: 'keep-alive-timeout-ms', schema: positiveInt, default: 5000, description: 'an idle keep-alive connection is closed after this long' }),
  maxRequestsPerSocket: setting({ env: 'SPILLWAY_MAX_REQUESTS_PER_SOCKET', flag: 'max-requests-per-socket', schema: nonNegativeInt, default: 10_000, description: 'requests one keep-alive connection may carry before it is closed (0 = no limit)' }),
  maxConnections: setting({ env: 'SPILLWAY_MAX_CONNECTIONS', flag: 'max-connections', schema: nonNegativeInt, default: 10_000, description: 'open connections at most; further ones are closed at once (0 = no limit)' }),
  logLevel: setting({ env: 'SPILLWAY_LOG_LEVEL', flag: 'log-level', schema: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']), default: 'info', description: 'log level' }),
};

export type GatewayConfig = ConfigOf<typeof gatewaySettings>;

export function loadGatewayConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env) {
  const loaded = loadConfig(gatewaySettings, argv, env);
  checkKafkaSasl(loaded.config);
  const c = loaded.config;
  // node:http refuses a headers timeout longer than the request timeout.
  if (c.headersTimeoutMs > c.requestTimeoutMs) throw new ConfigError([`--request-timeout-ms=${c.requestTimeoutMs} must be at least --headers-timeout-ms=${c.headersTimeoutMs}`]);
  return loaded;
}
