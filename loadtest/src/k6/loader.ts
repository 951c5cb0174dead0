/**
 * Loads a k6 script in this Node process: module loader hooks map the specifiers `k6`,
 * `k6/http`, `k6/metrics` and `k6/execution` to the shim (each as a small virtual module that
 * re-exports the shim and adds the default export k6 scripts import), and the k6 globals are
 * installed: `__ENV`, `__VU` and `__ITER` (read from the iteration context) and `open()`.
 * Any other `k6/...` module is refused with a clear message.
 */
import fs from 'node:fs';
import { register } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runtime } from './runtime.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

export const SHIMMED = {
  k6: path.join(here, 'modules/k6.ts'),
  'k6/http': path.join(here, 'modules/http.ts'),
  'k6/metrics': path.join(here, 'modules/metrics.ts'),
  'k6/execution': path.join(here, 'modules/execution.ts'),
} as const;

// k6 scripts are ES modules wherever they live; Node would take a .js file outside a
// "type": "module" package for CommonJS, so .js files under the script's folder load as modules.
const HOOKS = `
let map;
let scriptDir;
export function initialize(data) { map = data.map; scriptDir = data.scriptDir; }
export async function load(url, context, next) {
  if (url.startsWith(scriptDir) && url.endsWith('.js')) {
    const r = await next(url, { ...context, format: 'module' });
    return { ...r, format: 'module' };
  }
  return next(url, context);
}
export async function resolve(specifier, context, next) {
  if (Object.hasOwn(map, specifier)) {
    const target = JSON.stringify(map[specifier]);
    const source = 'import * as m from ' + target + '; export * from ' + target + '; export default m;';
    return { url: 'data:text/javascript,' + encodeURIComponent(source), shortCircuit: true };
  }
  if (specifier === 'k6' || specifier.startsWith('k6/')) {
    throw new Error('spillway loadtest: module ' + specifier + ' is not provided by the k6 shim (it has ' + Object.keys(map).join(', ') + '); run this script with real k6');
  }
  return next(specifier, context);
}
`;

let registered = false;

/** Once per process (one script per run): the k6 module map, and ESM for the script's folder. */
export function registerK6Modules(scriptDir: string): void {
  if (registered) return;
  registered = true;
  const map = Object.fromEntries(Object.entries(SHIMMED).map(([k, p]) => [k, pathToFileURL(p).href]));
  register(`data:text/javascript,${encodeURIComponent(HOOKS)}`, import.meta.url, { data: { map, scriptDir: pathToFileURL(scriptDir).href + '/' } });
}

let globalsInstalled = false;

function installGlobals(scriptDir: string): void {
  const g = globalThis as Record<string, unknown>;
  if (!globalsInstalled) {
    globalsInstalled = true;
    Object.defineProperty(globalThis, '__ENV', { configurable: true, get: () => runtime().env });
    Object.defineProperty(globalThis, '__VU', { configurable: true, get: () => runtime().context.getStore()?.vu ?? 0 });
    Object.defineProperty(globalThis, '__ITER', { configurable: true, get: () => runtime().context.getStore()?.vuIteration ?? 0 });
  }
  g.open = (file: string, mode?: string) => {
    const buf = fs.readFileSync(path.resolve(scriptDir, file));
    return mode === 'b' ? buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) : buf.toString('utf8');
  };
}

export type ScriptFunction = (data?: unknown) => unknown;

export interface Script {
  file: string;
  options: Record<string, unknown>;
  functions: Map<string, ScriptFunction>;
  setup?: () => unknown;
  teardown?: (data: unknown) => unknown;
  handleSummary?: (data: unknown) => unknown;
  /** Every other named export (e.g. a scenario's stack profile for `--up`). */
  exports: Record<string, unknown>;
}

export async function loadScript(file: string): Promise<Script> {
  const abs = path.resolve(file);
  registerK6Modules(path.dirname(abs));
  installGlobals(path.dirname(abs));
  const mod = (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
  const functions = new Map<string, ScriptFunction>();
  for (const [name, v] of Object.entries(mod)) if (typeof v === 'function') functions.set(name, v as ScriptFunction);
  const fn = (name: string) => functions.get(name);
  const options = mod.options;
  return {
    file: abs,
    options: typeof options === 'object' && options !== null ? (options as Record<string, unknown>) : {},
    functions,
    setup: fn('setup') as (() => unknown) | undefined,
    teardown: fn('teardown') as ((data: unknown) => unknown) | undefined,
    handleSummary: fn('handleSummary') as ((data: unknown) => unknown) | undefined,
    exports: mod,
  };
}
