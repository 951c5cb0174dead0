/**
 * Settings of `spillway loadtest`: flags first, then env vars (k6's own names where k6 scripts read
 * them: BASE_URL, ADMIN_TOKEN, DOWNSTREAM_URL), then defaults. The only module of the runner that
 * reads process.env; it also hands the environment to the script as `__ENV`, as `k6 run` does.
 */
import { parseArgs } from 'node:util';

export interface LoadtestConfig {
  scenario: string | null;
  up: boolean;
  baseUrl: string;
  adminToken: string;
  downstreamUrl: string;
  downstreamName: string;
  /** null = do not read broker offsets. */
  kafkaBrokers: string | null;
  topic: string;
  dlqTopic: string;
  rate: number | null;
  burst: number | null;
  env: Record<string, string>;
  out: string | null;
  drainTimeoutS: number;
  verify: boolean;
  quiet: boolean;
  keepLedger: boolean;
  help: boolean;
}

export class LoadtestConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

export const HELP = `usage: spillway loadtest <scenario> [options]

Runs a k6 scenario (loadtest/scenarios/<scenario>.js, or a path to a k6 script) on this machine
through a k6 shim (open-model arrival rates, checks, thresholds, handleSummary), then verifies the
run end to end and writes an HTML report and a JSON summary.

  --up                      start a private stack first (spillway up: temp data dir, free ports,
                            the scenario's spillwayStack settings) and stop it afterwards
  --base-url URL            gateway of a running stack     env BASE_URL (default http://127.0.0.1:8080)
  --admin-token TOKEN       its admin token                env ADMIN_TOKEN or SPILLWAY_ADMIN_TOKEN
  --downstream-url URL      the downstream simulator       env DOWNSTREAM_URL (default http://127.0.0.1:8090)
  --downstream-name NAME    the drainer's downstream       (default fulfilment)
  --kafka-brokers LIST      broker for offsets, or "none"  env KAFKA_BROKERS (default 127.0.0.1:9092)
  --topic T, --dlq-topic T  (default orders, orders.dlq)
  --rate N --burst N        the drainer's limit the verifier holds the downstream to
                            (default: the stack's with --up, else the simulator's capacity)
  -e, --env NAME=VALUE      set a script parameter (__ENV), like k6 -e; repeatable
  --out DIR                 where the report goes (default loadtest/results/<scenario>-<time>)
  --drain-timeout S         wait up to S seconds for the drain before verifying (default 60; 0 = verify at once)
  --no-verify               skip the verifier
  --keep-ledger             do not reset the simulator's ledger before the run
  --quiet                   no live progress line
  --help                    this text

Exit codes: 0 passed; 99 thresholds crossed (as k6); 90 the verifier failed; 104 invalid
options; 105 interrupted (Ctrl-C; a private stack is stopped); 107 the script threw outside
iterations; 108 the script aborted the test.`;

export function loadLoadtestConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): LoadtestConfig {
  const problems: string[] = [];
  let values: Record<string, string | boolean | string[] | undefined> = {};
  let positionals: string[] = [];
  try {
    const parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        up: { type: 'boolean' },
        'base-url': { type: 'string' },
        'admin-token': { type: 'string' },
        'downstream-url': { type: 'string' },
        'downstream-name': { type: 'string' },
        'kafka-brokers': { type: 'string' },
        topic: { type: 'string' },
        'dlq-topic': { type: 'string' },
        rate: { type: 'string' },
        burst: { type: 'string' },
        env: { type: 'string', short: 'e', multiple: true },
        out: { type: 'string' },
        'drain-timeout': { type: 'string' },
        'no-verify': { type: 'boolean' },
        'keep-ledger': { type: 'boolean' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    values = parsed.values;
    positionals = parsed.positionals;
  } catch (err) {
    problems.push((err as Error).message);
  }
  const str = (flag: string, ...fallbacks: (string | undefined)[]): string | undefined => {
    const v = values[flag];
    if (typeof v === 'string') return v;
    return fallbacks.find((f) => f !== undefined && f !== '');
  };
  const numOrNull = (flag: string): number | null => {
    const v = str(flag);
    if (v === undefined) return null;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) {
      problems.push(`--${flag}=${v}: a non-negative number`);
      return null;
    }
    return n;
  };
  const scriptEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) scriptEnv[k] = v;
  const pairs = values.env;
  for (const p of Array.isArray(pairs) ? pairs : []) {
    const i = p.indexOf('=');
    if (i <= 0) problems.push(`--env ${p}: expected NAME=VALUE`);
    else scriptEnv[p.slice(0, i)] = p.slice(i + 1);
  }
  const url = (flag: string, v: string): string => {
    if (values.up === true) return v; // --up picks its own URLs
    try {
      new URL(v);
    } catch {
      problems.push(`--${flag}=${v}: not a URL`);
    }
    return v.replace(/\/$/, '');
  };
  const brokers = str('kafka-brokers', env.KAFKA_BROKERS) ?? '127.0.0.1:9092';
  const drain = numOrNull('drain-timeout');
  if (positionals.length > 1) problems.push(`one scenario at a time (got ${positionals.join(', ')})`);
  const config: LoadtestConfig = {
    scenario: positionals[0] ?? null,
    up: values.up === true,
    baseUrl: url('base-url', str('base-url', scriptEnv.BASE_URL) ?? 'http://127.0.0.1:8080'),
    adminToken: str('admin-token', scriptEnv.ADMIN_TOKEN, scriptEnv.SPILLWAY_ADMIN_TOKEN) ?? '',
    downstreamUrl: url('downstream-url', str('downstream-url', scriptEnv.DOWNSTREAM_URL) ?? 'http://127.0.0.1:8090'),
    downstreamName: str('downstream-name') ?? 'fulfilment',
    kafkaBrokers: brokers === 'none' ? null : brokers,
    topic: str('topic') ?? 'orders',
    dlqTopic: str('dlq-topic') ?? 'orders.dlq',
    rate: numOrNull('rate'),
    burst: numOrNull('burst'),
    env: scriptEnv,
    out: str('out') ?? null,
    drainTimeoutS: drain ?? 60,
    verify: values['no-verify'] !== true,
    quiet: values.quiet === true,
    keepLedger: values['keep-ledger'] === true,
    help: values.help === true,
  };
  if (!config.help && config.scenario === null) problems.push('name a scenario (e.g. spillway loadtest flash-sale), or a path to a k6 script');
  if (problems.length > 0) throw new LoadtestConfigError(problems);
  return config;
}

/** The environment for the processes of a private stack (`--up`). */
export function stackEnvironment(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { ...process.env, ...extra };
}
