/** Settings of `spillway broker`: every one has a flag and an env var. */
import fs from 'node:fs';
import { z } from 'zod';
import { ConfigError, bool, loadConfig, nonNegativeInt, port, positiveInt, setting, type ConfigOf } from '../../lib/src/config.ts';

const durationMs = z.coerce.number().int().min(-1);

export const brokerSettings = {
  host: setting({ env: 'SPILLWAY_BROKER_HOST', flag: 'host', schema: z.string().min(1), default: '127.0.0.1', description: 'address the Kafka listener binds to' }),
  port: setting({ env: 'SPILLWAY_BROKER_PORT', flag: 'port', schema: port, default: 9092, description: 'Kafka listener port (0 = any free port)' }),
  advertisedHost: setting({
    env: 'SPILLWAY_BROKER_ADVERTISED_HOST',
    flag: 'advertised-host',
    schema: z.string(),
    default: '',
    description: 'host clients are told to connect to (default: the bind host, or 127.0.0.1 for 0.0.0.0)',
  }),
  advertisedPort: setting({ env: 'SPILLWAY_BROKER_ADVERTISED_PORT', flag: 'advertised-port', schema: port, default: 0, description: 'port clients are told to connect to (0 = the listening port)' }),
  dataDir: setting({ env: 'SPILLWAY_DATA_DIR', flag: 'data-dir', schema: z.string().min(1), default: './data/broker', description: 'where the logs live' }),
  metricsHost: setting({ env: 'SPILLWAY_BROKER_METRICS_HOST', flag: 'metrics-host', schema: z.string().min(1), default: '127.0.0.1', description: 'address of the /metrics and /healthz HTTP listener' }),
  metricsPort: setting({ env: 'SPILLWAY_BROKER_METRICS_PORT', flag: 'metrics-port', schema: port, default: 9400, description: 'metrics/health HTTP port (0 = any free port)' }),
  fsync: setting({
    env: 'SPILLWAY_FSYNC',
    flag: 'fsync',
    schema: z.enum(['always', 'interval']),
    default: 'always' as 'always' | 'interval',
    description: 'always: ack after fdatasync (group commit); interval: ack after write, fsync periodically (weaker: power loss can lose the last interval)',
  }),
  fsyncIntervalMs: setting({ env: 'SPILLWAY_FSYNC_INTERVAL_MS', flag: 'fsync-interval-ms', schema: positiveInt, default: 200, description: 'fsync period for --fsync interval' }),
  defaultPartitions: setting({ env: 'SPILLWAY_DEFAULT_PARTITIONS', flag: 'default-partitions', schema: positiveInt.max(1024), default: 12, description: 'partitions of auto-created topics and of CreateTopics without a count' }),
  autoCreateTopics: setting({ env: 'SPILLWAY_AUTO_CREATE_TOPICS', flag: 'auto-create-topics', schema: bool, default: true, description: 'create unknown topics on Metadata requests that allow it' }),
  segmentBytes: setting({ env: 'SPILLWAY_SEGMENT_BYTES', flag: 'segment-bytes', schema: positiveInt.min(1024), default: 128 * 1024 * 1024, description: 'roll a segment at this size' }),
  segmentMs: setting({ env: 'SPILLWAY_SEGMENT_MS', flag: 'segment-ms', schema: positiveInt, default: 6 * 3600_000, description: 'roll a segment at this age' }),
  retentionMs: setting({ env: 'SPILLWAY_RETENTION_MS', flag: 'retention-ms', schema: durationMs, default: 72 * 3600_000, description: 'delete whole segments older than this (-1 = keep)' }),
  retentionBytes: setting({
    env: 'SPILLWAY_RETENTION_BYTES',
    flag: 'retention-bytes',
    schema: z.coerce.number().int().min(-1),
    default: 16 * 1024 * 1024 * 1024,
    description: 'per-partition size cap; oldest segments are deleted beyond it (-1 = none)',
  }),
  retentionCheckIntervalMs: setting({ env: 'SPILLWAY_RETENTION_CHECK_INTERVAL_MS', flag: 'retention-check-interval-ms', schema: positiveInt, default: 60_000, description: 'how often retention runs' }),
  checkpointIntervalMs: setting({ env: 'SPILLWAY_CHECKPOINT_INTERVAL_MS', flag: 'checkpoint-interval-ms', schema: positiveInt, default: 5_000, description: 'how often the recovery point is recorded (bounds the tail re-validated after a crash)' }),
  indexIntervalBytes: setting({ env: 'SPILLWAY_INDEX_INTERVAL_BYTES', flag: 'index-interval-bytes', schema: positiveInt, default: 4096, description: 'bytes of log between sparse index entries' }),
  maxMessageBytes: setting({ env: 'SPILLWAY_MAX_MESSAGE_BYTES', flag: 'max-message-bytes', schema: positiveInt, default: 8 * 1024 * 1024, description: 'largest record batch accepted' }),
  maxRequestBytes: setting({ env: 'SPILLWAY_MAX_REQUEST_BYTES', flag: 'max-request-bytes', schema: positiveInt, default: 100 * 1024 * 1024, description: 'larger request frames close the connection' }),
  maxConnections: setting({ env: 'SPILLWAY_MAX_CONNECTIONS', flag: 'max-connections', schema: positiveInt, default: 4096, description: 'connections beyond this are refused' }),
  requestReadTimeoutMs: setting({
    env: 'SPILLWAY_REQUEST_READ_TIMEOUT_MS',
    flag: 'request-read-timeout-ms',
    schema: nonNegativeInt,
    default: 30_000,
    description: 'a request frame that has started arriving must be complete within this, or the connection is closed (slowloris); time spent paused by backpressure does not count (0 = never)',
  }),
  maxBufferedRequestBytes: setting({
    env: 'SPILLWAY_MAX_BUFFERED_REQUEST_BYTES',
    flag: 'max-buffered-request-bytes',
    schema: positiveInt.min(1024),
    default: 256 * 1024 * 1024,
    description: 'memory for partly received request frames across all connections; a connection whose next frame does not fit stops being read until memory is free (frames larger than this are refused like --max-request-bytes)',
  }),
  idleTimeoutMs: setting({ env: 'SPILLWAY_IDLE_TIMEOUT_MS', flag: 'idle-timeout-ms', schema: nonNegativeInt, default: 600_000, description: 'close connections idle this long (0 = never)' }),
  groupInitialRebalanceDelayMs: setting({
    env: 'SPILLWAY_GROUP_INITIAL_REBALANCE_DELAY_MS',
    flag: 'group-initial-rebalance-delay-ms',
    schema: nonNegativeInt,
    default: 0,
    description: 'how long an empty group waits for more members before its first rebalance completes',
  }),
  groupMinSessionTimeoutMs: setting({ env: 'SPILLWAY_GROUP_MIN_SESSION_TIMEOUT_MS', flag: 'group-min-session-timeout-ms', schema: positiveInt, default: 6000, description: 'smallest session timeout a consumer may ask for' }),
  groupMaxSessionTimeoutMs: setting({ env: 'SPILLWAY_GROUP_MAX_SESSION_TIMEOUT_MS', flag: 'group-max-session-timeout-ms', schema: positiveInt, default: 1_800_000, description: 'largest session timeout a consumer may ask for' }),
  adminToken: setting({ env: 'SPILLWAY_BROKER_ADMIN_TOKEN', flag: 'admin-token', schema: z.string(), default: '', description: 'bearer token required by the /admin HTTP API (empty = no token; the listener is on loopback by default)', secret: true }),
  saslPlainUsers: setting({
    env: 'SPILLWAY_SASL_PLAIN_USERS',
    flag: 'sasl-plain-users',
    schema: z.string().refine((v) => v === '' || parseUserList(v) !== null, 'expected user:password pairs separated by commas (no empty user or password, no user twice)'),
    default: '',
    description: 'turns on SASL/PLAIN: comma-separated user:password pairs; clients must then authenticate before any other request',
    secret: true,
  }),
  saslPlainUsersFile: setting({
    env: 'SPILLWAY_SASL_PLAIN_USERS_FILE',
    flag: 'sasl-plain-users-file',
    schema: z.string(),
    default: '',
    description: 'turns on SASL/PLAIN: a file with one user:password per line (# comments; the password is the rest of the line); adds to --sasl-plain-users',
  }),
  logLevel: setting({ env: 'SPILLWAY_LOG_LEVEL', flag: 'log-level', schema: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']), default: 'info', description: 'log level' }),
};

export type BrokerConfig = ConfigOf<typeof brokerSettings>;

export function loadBrokerConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env) {
  return loadConfig(brokerSettings, argv, env);
}

/** `a:1,b:2` -> Map; null when malformed (an entry without ':', an empty user or password, a user twice). */
function parseUserList(raw: string): Map<string, string> | null {
  return parseUsers(raw.split(','));
}

function parseUsers(entries: readonly string[]): Map<string, string> | null {
  const users = new Map<string, string>();
  for (const entry of entries) {
    const at = entry.indexOf(':');
    if (at <= 0 || at === entry.length - 1) return null;
    const user = entry.slice(0, at).trim();
    if (user === '' || users.has(user)) return null;
    users.set(user, entry.slice(at + 1));
  }
  return users;
}

/**
 * The SASL/PLAIN users from --sasl-plain-users and --sasl-plain-users-file, or null when SASL is
 * off. Throws ConfigError (naming the file and line, never a password) when the file is unreadable
 * or malformed.
 */
export function loadSaslPlainUsers(config: Pick<BrokerConfig, 'saslPlainUsers' | 'saslPlainUsersFile'>): ReadonlyMap<string, string> | null {
  if (config.saslPlainUsers === '' && config.saslPlainUsersFile === '') return null;
  const users = config.saslPlainUsers === '' ? new Map<string, string>() : parseUserList(config.saslPlainUsers);
  if (users === null) throw new ConfigError(['SPILLWAY_SASL_PLAIN_USERS: expected user:password pairs separated by commas']);
  if (config.saslPlainUsersFile !== '') {
    let text: string;
    try {
      text = fs.readFileSync(config.saslPlainUsersFile, 'utf8');
    } catch (err) {
      throw new ConfigError([`SPILLWAY_SASL_PLAIN_USERS_FILE=${JSON.stringify(config.saslPlainUsersFile)}: ${(err as Error).message}`]);
    }
    const problems: string[] = [];
    text.split(/\r?\n/).forEach((line, i) => {
      if (line.trim() === '' || line.trimStart().startsWith('#')) return;
      const parsed = parseUsers([line]);
      const [user, password] = parsed === null ? [] : [...parsed][0];
      if (user === undefined || password === undefined) problems.push(`${config.saslPlainUsersFile}:${i + 1}: expected user:password`);
      else if (users.has(user)) problems.push(`${config.saslPlainUsersFile}:${i + 1}: user ${JSON.stringify(user)} given twice`);
      else users.set(user, password);
    });
    if (problems.length > 0) throw new ConfigError(problems);
  }
  if (users.size === 0) throw new ConfigError([`SPILLWAY_SASL_PLAIN_USERS_FILE=${JSON.stringify(config.saslPlainUsersFile)}: no users`]);
  return users;
}
