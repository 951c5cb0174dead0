/**
 * Test and benchmark support: real child processes (spillway subcommands, redis-server) on
 * ephemeral ports with fresh temp dirs, and waitFor() instead of fixed sleeps. Imports no component.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const spillwayBin = path.join(repoRoot, 'bin/spillway.mjs');

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `spillway-${prefix}-`));
}

export async function waitFor<T>(probe: () => T | Promise<T>, opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== null && v !== false) return v as NonNullable<T>;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${opts.what ?? 'condition'}${lastErr ? `: ${String(lastErr)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface SpillwayProcess {
  proc: ChildProcess;
  /** Parsed NDJSON log lines so far. */
  logs: Record<string, unknown>[];
  stderr: string[];
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Calls `onLine` with each complete line of a text stream as it arrives. */
export function onLines(stream: Readable, onLine: (line: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      onLine(line);
    }
  });
}

/**
 * Starts `spillway <command> ...args` (after `nodeArgs`, node's own flags such as --cpu-prof,
 * which NODE_OPTIONS does not take) and resolves once a log line matches `ready`. `onLog` sees
 * every log line as it arrives, start-up included (the returned `logs` only once ready).
 */
export async function startSpillway(
  args: string[],
  opts: { ready: (line: Record<string, unknown>) => boolean; env?: NodeJS.ProcessEnv; timeoutMs?: number; nodeArgs?: string[]; onLog?: (line: Record<string, unknown>) => void },
): Promise<SpillwayProcess & { readyLine: Record<string, unknown> }> {
  const proc = spawn(process.execPath, [...(opts.nodeArgs ?? []), spillwayBin, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  let readyLine: Record<string, unknown> | undefined;
  onLines(proc.stdout, (line) => {
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      logs.push(parsed);
      opts.onLog?.(parsed);
      if (!readyLine && opts.ready(parsed)) readyLine = parsed;
    } catch {
      logs.push({ raw: line });
    }
  });
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (chunk: string) => stderr.push(chunk));
  let exitCode: number | null | undefined;
  void exited.then((c) => (exitCode = c));
  const kill = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (exitCode === undefined) proc.kill(signal);
    return exited;
  };
  try {
    const line = await waitFor(() => {
      if (exitCode !== undefined) throw new Error(`exited with ${exitCode}: ${stderr.join('')}`);
      return readyLine;
    }, { timeoutMs: opts.timeoutMs ?? 30_000, what: `spillway ${args[0]} to start`, intervalMs: 20 });
    return { proc, logs, stderr, exited, kill, readyLine: line };
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
}

export interface BrokerProcess extends SpillwayProcess {
  port: number;
  metricsPort: number;
  dataDir: string;
  bootstrap: string;
}

export async function startBrokerProcess(opts: { dataDir?: string; args?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<BrokerProcess> {
  const dataDir = opts.dataDir ?? tempDir('broker');
  const p = await startSpillway(['broker', '--port', '0', '--metrics-port', '0', '--data-dir', dataDir, ...(opts.args ?? [])], {
    ready: (l) => l.msg === 'broker listening',
    env: opts.env,
  });
  const port = p.readyLine.port as number;
  return { ...p, port, metricsPort: p.readyLine.metricsPort as number, dataDir, bootstrap: `127.0.0.1:${port}` };
}

export interface RedisProcess {
  port: number;
  url: string;
  dir: string;
  proc: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** A private redis-server on a free port (so a test can stop and restart it). */
export async function startRedis(opts: { port?: number; dir?: string; args?: string[] } = {}): Promise<RedisProcess> {
  const port = opts.port ?? (await freePort());
  const dir = opts.dir ?? tempDir('redis');
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...(opts.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.once('connect', () => {
          s.write('PING\r\n');
          s.once('data', (d) => {
            s.destroy();
            resolve(d.toString().startsWith('+PONG'));
          });
        });
        s.once('error', () => resolve(false));
      }),
    { what: 'redis-server to answer PING' },
  );
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    proc,
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
    },
  };
}

/** Runs a command to completion, feeding `input` to stdin; resolves with its output. */
export function run(cmd: string, args: string[], opts: { input?: string | Buffer; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.once('error', reject);
    p.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
    p.stdin.on('error', () => undefined);
    p.stdin.end(opts.input ?? '');
  });
}

export interface GatewayProcess extends SpillwayProcess {
  port: number;
  url: string;
}

/** Starts `spillway gateway` against the given Redis and Kafka bootstrap on a free port. */
export async function startGatewayProcess(opts: { redisUrl: string; kafkaBrokers: string; args?: string[]; env?: NodeJS.ProcessEnv }): Promise<GatewayProcess> {
  const p = await startSpillway(['gateway', '--port', '0', '--redis-url', opts.redisUrl, '--kafka-brokers', opts.kafkaBrokers, ...(opts.args ?? [])], {
    ready: (l) => l.msg === 'gateway listening',
    env: opts.env,
  });
  const port = p.readyLine.port as number;
  return { ...p, port, url: `http://127.0.0.1:${port}` };
}
