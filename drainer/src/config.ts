/**
 * Settings of `spillway drainer` (flags and env vars) and the downstreams file (YAML or JSON,
 * given by --config), validated with zod; every problem is reported at once.
 */
import fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError, loadConfig, port, setting, type ConfigOf } from '../../lib/src/config.ts';
import { checkKafkaSasl, kafkaSaslSettings } from '../../lib/src/kafka-sasl.ts';

export const drainerSettings = {
  config: setting({ env: 'SPILLWAY_DRAINER_CONFIG', flag: 'config', schema: z.string(), default: '', description: 'YAML or JSON file listing the downstreams (see README)' }),
  metricsHost: setting({ env: 'SPILLWAY_DRAINER_METRICS_HOST', flag: 'metrics-host', schema: z.string().min(1), default: '127.0.0.1', description: 'address of /metrics and /healthz' }),
  metricsPort: setting({ env: 'SPILLWAY_DRAINER_METRICS_PORT', flag: 'metrics-port', schema: port, default: 9401, description: 'metrics/health HTTP port (0 = any free port)' }),
  redisUrl: setting({ env: 'REDIS_URL', flag: 'redis-url', schema: z.string().url(), default: 'redis://127.0.0.1:6379', description: 'Redis for the BullMQ window, rate limits, control and status' }),
  kafkaBrokers: setting({
    env: 'KAFKA_BROKERS',
    flag: 'kafka-brokers',
    schema: z.string().regex(/^[^,\s]+:\d+(,[^,\s]+:\d+)*$/, 'a comma-separated list of host:port'),
    default: '127.0.0.1:9092',
    description: 'Kafka bootstrap servers',
  }),
  ...kafkaSaslSettings,
  dlqTopic: setting({ env: 'SPILLWAY_DLQ_TOPIC', flag: 'dlq-topic', schema: z.string().regex(/^[a-zA-Z0-9._-]{1,249}$/), default: 'orders.dlq', description: 'durable dead-letter topic' }),
  logLevel: setting({ env: 'SPILLWAY_LOG_LEVEL', flag: 'log-level', schema: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']), default: 'info', description: 'log level' }),
};
export type DrainerSettings = ConfigOf<typeof drainerSettings>;

const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a time as HH:MM');

export const windowSchema = z
  .strictObject({ from: hhmm, to: hhmm, rate: z.number().positive().optional(), pause: z.boolean().optional() })
  .refine((w) => (w.rate !== undefined) !== (w.pause === true), 'a window has either a rate or pause: true');

export const downstreamSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, - and _'),
  url: z.string().url(),
  topic: z.string().regex(/^[a-zA-Z0-9._-]{1,249}$/).default('orders'),
  rate: z.number().positive().max(1_000_000),
  /** Deliveries allowed above the rate in any second; default max(20, 10% of the rate). */
  burst: z.number().int().positive().max(100_000).optional(),
  timeoutMs: z.number().int().positive().max(600_000).default(5000),
  concurrency: z.number().int().positive().max(1000).default(50),
  /** Seconds of the permitted rate kept as pending jobs in BullMQ (the rest stays in the log). */
  windowSeconds: z.number().positive().max(600).default(5),
  retry: z
    .strictObject({
      attempts: z.number().int().min(1).max(100).default(8),
      backoffMs: z.number().int().positive().default(500),
      jitter: z.number().min(0).max(1).default(0.5),
    })
    .default({ attempts: 8, backoffMs: 500, jitter: 0.5 }),
  timezone: z.string().default('UTC'),
  windows: z.array(windowSchema).default([]),
  /** Consumer group; defaults to spillway-drainer-<name>. */
  group: z.string().optional(),
});
export type DownstreamConfig = z.infer<typeof downstreamSchema>;

/** The burst in force: the configured one, or max(20, 10% of the rate). */
export function burstOf(d: Pick<DownstreamConfig, 'burst'>, rate: number): number {
  return d.burst ?? Math.max(20, Math.ceil(rate * 0.1));
}

export const downstreamsFileSchema = z.strictObject({ downstreams: z.array(downstreamSchema).min(1) });

export function loadDownstreams(file: string): DownstreamConfig[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`--config ${file}: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError([`--config ${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`]);
  }
  const r = downstreamsFileSchema.safeParse(raw);
  if (!r.success) throw new ConfigError(r.error.issues.map((i) => `--config ${file}: ${i.path.join('.') || '(root)'}: ${i.message}`));
  const problems: string[] = [];
  const names = new Set<string>();
  for (const d of r.data.downstreams) {
    if (names.has(d.name)) problems.push(`--config ${file}: downstream name ${d.name} is used twice`);
    names.add(d.name);
    try {
      new Intl.DateTimeFormat('en-GB', { timeZone: d.timezone });
    } catch {
      problems.push(`--config ${file}: downstreams.${d.name}.timezone: unknown time zone ${d.timezone}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return r.data.downstreams;
}

export function loadDrainerConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env) {
  const loaded = loadConfig(drainerSettings, argv, env);
  checkKafkaSasl(loaded.config);
  return loaded;
}
