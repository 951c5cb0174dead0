/**
 * Settings of `spillway downstream`, the slow-downstream simulator: every one has a flag and an
 * env var (read through lib/src/config.ts; flags win over env vars, env vars over defaults).
 */
import { z } from 'zod';
import { loadConfig, nonNegativeInt, port, positiveInt, setting, type ConfigOf } from '../../../lib/src/config.ts';

/** Longest added service time (also the cap of PUT /control latencyMs): shutdown waits for it. */
export const MAX_LATENCY_MS = 60_000;

export const downstreamSettings = {
  host: setting({ env: 'SPILLWAY_DOWNSTREAM_HOST', flag: 'host', schema: z.string().min(1), default: '127.0.0.1', description: 'address the simulator binds to' }),
  port: setting({ env: 'SPILLWAY_DOWNSTREAM_PORT', flag: 'port', schema: port, default: 8090, description: 'HTTP port (0 = any free port)' }),
  rate: setting({
    env: 'SPILLWAY_DOWNSTREAM_RATE',
    flag: 'rate',
    schema: z.coerce.number().min(0),
    default: 200,
    description: 'capacity in requests/s (token bucket refill rate; 0 = unlimited)',
  }),
  burst: setting({ env: 'SPILLWAY_DOWNSTREAM_BURST', flag: 'burst', schema: positiveInt, default: 20, description: 'token bucket size: requests admitted back to back above the rate' }),
  latencyMs: setting({
    env: 'SPILLWAY_DOWNSTREAM_LATENCY_MS',
    flag: 'latency-ms',
    schema: nonNegativeInt.max(MAX_LATENCY_MS),
    default: 0,
    description: 'service time added to every admitted request',
  }),
  logLevel: setting({ env: 'SPILLWAY_LOG_LEVEL', flag: 'log-level', schema: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']), default: 'info', description: 'log level' }),
};

export type DownstreamConfig = ConfigOf<typeof downstreamSettings>;

/** `env` defaults to the process environment (inside lib/src/config.ts). */
export function loadDownstreamConfig(argv: readonly string[], env?: NodeJS.ProcessEnv) {
  return loadConfig(downstreamSettings, argv, env);
}
