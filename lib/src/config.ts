/**
 * Typed settings shared by every component.
 *
 * A component declares its settings once (name, env var, flag, zod schema, default, help text).
 * `loadConfig` reads flags first, then env vars, then defaults; it validates every value and
 * reports every bad one at once instead of stopping at the first. This module is the only place
 * (with each component's own config.ts) that reads `process.env`.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';

export interface Setting<T> {
  /** Env var name, e.g. SPILLWAY_BROKER_PORT. */
  env: string;
  /** Long flag without dashes, e.g. "port". */
  flag: string;
  schema: z.ZodType<T>;
  default: T;
  description: string;
  secret?: boolean;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- heterogeneous map of settings
export type SettingsSpec = Record<string, Setting<any>>;
export type ConfigOf<S extends SettingsSpec> = { [K in keyof S]: S[K]['default'] };

export function setting<T>(s: Setting<T>): Setting<T> {
  return s;
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

export interface LoadedConfig<S extends SettingsSpec> {
  config: ConfigOf<S>;
  /** Flags not belonging to settings (e.g. --help, --print-config). */
  help: boolean;
  printConfig: boolean;
  positionals: string[];
}

/** Schemas for common raw string settings. */
export const port = z.coerce.number().int().min(0).max(65535);
export const positiveInt = z.coerce.number().int().positive();
export const nonNegativeInt = z.coerce.number().int().min(0);
export const bool = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'])])
  .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');
export const nonEmpty = z.string().min(1);

export function loadConfig<S extends SettingsSpec>(
  spec: S,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): LoadedConfig<S> {
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    help: { type: 'boolean' },
    'print-config': { type: 'boolean' },
  };
  for (const s of Object.values(spec)) options[s.flag] = { type: 'string' };
  const problems: string[] = [];
  let values: Record<string, string | boolean | undefined> = {};
  let positionals: string[] = [];
  try {
    const parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
    values = parsed.values as Record<string, string | boolean | undefined>;
    positionals = parsed.positionals;
  } catch (err) {
    problems.push((err as Error).message);
  }
  const config: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(spec)) {
    const fromFlag = values[s.flag];
    const fromEnv = env[s.env];
    const raw = fromFlag ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined);
    if (raw === undefined) {
      config[key] = s.default;
      continue;
    }
    const result = s.schema.safeParse(raw);
    if (result.success) {
      config[key] = result.data;
    } else {
      const source = fromFlag !== undefined ? `--${s.flag}` : s.env;
      const shown = s.secret ? '<redacted>' : JSON.stringify(raw);
      const why = result.error.issues.map((i) => i.message).join('; ');
      problems.push(`${source}=${shown}: ${why}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    config: config as ConfigOf<S>,
    help: values.help === true,
    printConfig: values['print-config'] === true,
    positionals,
  };
}

/** The effective configuration as printable JSON, secrets redacted. */
export function redactedConfig<S extends SettingsSpec>(spec: S, config: ConfigOf<S>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(spec)) {
    const v = config[key as keyof S];
    out[key] = s.secret && v !== '' && v !== undefined ? '<redacted>' : typeof v === 'string' ? redactUrlPassword(v) : v;
  }
  return out;
}

/** `redis://user:secret@host` → `redis://user:<redacted>@host`: credentials in a URL setting are secret too. */
export function redactUrlPassword(v: string): string {
  return v.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*:)[^/@]*@/i, '$1<redacted>@');
}

export function helpText<S extends SettingsSpec>(command: string, summary: string, spec: S): string {
  const rows = Object.values(spec).map((s) => {
    const def = s.secret ? '' : ` (default: ${JSON.stringify(s.default)})`;
    return `  --${s.flag.padEnd(24)} ${s.env.padEnd(34)} ${s.description}${def}`;
  });
  return [
    `usage: spillway ${command} [options]`,
    '',
    summary,
    '',
    `  ${'flag'.padEnd(26)} ${'env var'.padEnd(34)} meaning`,
    ...rows,
    `  --${'print-config'.padEnd(24)} ${''.padEnd(34)} print the effective settings (secrets redacted) and exit`,
    `  --${'help'.padEnd(24)} ${''.padEnd(34)} this text`,
  ].join('\n');
}
