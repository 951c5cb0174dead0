/**
 * Child processes of the benchmark: the broker under test and the reference redis-server, each
 * on ephemeral ports with a fresh temp dir, plus helpers to run a tool to completion.
 *
 * Invariant: every process started here is registered with a Cleanup before this module returns
 * it, so an error anywhere in the run still stops it and removes its directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { RespClient } from './resp.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export class BenchError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** LIFO list of async undo steps; `run` tries them all and reports, never throws. */
export class Cleanup {
  private readonly steps: { name: string; run: () => Promise<void> | void }[] = [];
  private running: Promise<string[]> | undefined;

  add(name: string, run: () => Promise<void> | void): void {
    this.steps.push({ name, run });
  }

  run(): Promise<string[]> {
    this.running ??= (async () => {
      const failures: string[] = [];
      for (const s of [...this.steps].reverse()) {
        try {
          await s.run();
        } catch (err) {
          failures.push(`${s.name}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      return failures;
    })();
    return this.running;
  }
}

/**
 * Stops a server started on a temp dir of its own and removes that dir at once, not at the end of
 * the bench, so its files leave the page cache with it (see "Memory between runs" in bench/broker.ts).
 */
export async function stopAndRemove(server: { stop(): Promise<unknown>; dir: string }): Promise<void> {
  await server.stop();
  fs.rmSync(server.dir, { recursive: true, force: true });
}

export function makeTempDir(prefix: string, cleanup: Cleanup, base = os.tmpdir()): string {
  const dir = fs.mkdtempSync(path.join(base, prefix));
  cleanup.add(`rm ${dir}`, () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new BenchError('TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** SIGTERM, then SIGKILL after `graceMs`. Resolves with how it ended. */
export async function stopChild(child: ChildProcess, graceMs: number): Promise<string> {
  if (child.exitCode !== null || child.signalCode !== null) return `already exited (${child.exitCode ?? child.signalCode})`;
  child.kill('SIGTERM');
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
  if ((await Promise.race([exited(child).then(() => 'exited' as const), timer])) === 'timeout') {
    child.kill('SIGKILL');
    await exited(child);
    return `killed with SIGKILL after ${graceMs} ms`;
  }
  return child.exitCode === 0 ? 'clean exit' : `exit ${child.exitCode ?? child.signalCode}`;
}

export interface BrokerProcess {
  pid: number;
  port: number;
  metricsPort: number;
  dataDir: string;
  /** Log lines at warn level or above, and anything on stderr. */
  problems: string[];
  /** Set if the broker exits before stop() was called. */
  exitedEarly(): string | undefined;
  stop(): Promise<string>;
}

interface LogLine {
  level?: number;
  msg?: string;
  port?: number;
  metricsPort?: number;
}

/** Node flags that make a child write a V8 CPU profile into `dir` when it exits (none without a dir). */
export function cpuProfFlags(dir: string | undefined): string[] {
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

export async function startBroker(opts: { fsync: 'always' | 'interval'; logLevel: string; cleanup: Cleanup }): Promise<BrokerProcess> {
  const dataDir = makeTempDir('spillway-bench-broker-', opts.cleanup);
  // BENCH_BROKER_PROF (a directory): the broker writes a V8 CPU profile there when it exits.
  const args = [...cpuProfFlags(process.env.BENCH_BROKER_PROF), 'bin/spillway.mjs', 'broker', '--port', '0', '--metrics-port', '0', '--data-dir', dataDir, '--fsync', opts.fsync, '--log-level', opts.logLevel];
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stopping = false;
  let early: string | undefined;
  child.once('exit', (code, signal) => {
    if (!stopping) early = `broker exited unexpectedly (code ${code}, signal ${signal})`;
  });
  opts.cleanup.add('broker', async () => {
    stopping = true;
    await stopChild(child, 10_000);
  });
  const problems: string[] = [];
  readline.createInterface({ input: child.stderr }).on('line', (l) => problems.push(`stderr: ${l}`));
  const listening = new Promise<LogLine>((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (l) => {
      let rec: LogLine;
      try {
        rec = JSON.parse(l) as LogLine;
      } catch {
        problems.push(`stdout (not JSON): ${l}`);
        return;
      }
      if ((rec.level ?? 0) >= 40) problems.push(l);
      if (rec.msg === 'broker listening') resolve(rec);
    });
    child.once('exit', () => reject(new BenchError('BROKER_START', `broker exited during start-up:\n${problems.join('\n')}`)));
  });
  const rec = await withTimeout(listening, 30_000, 'broker start-up');
  if (typeof rec.port !== 'number' || typeof rec.metricsPort !== 'number' || child.pid === undefined) {
    throw new BenchError('BROKER_START', `"broker listening" line lacks port/metricsPort: ${JSON.stringify(rec)}`);
  }
  return {
    pid: child.pid,
    port: rec.port,
    metricsPort: rec.metricsPort,
    dataDir,
    problems,
    exitedEarly: () => early,
    stop: async () => {
      stopping = true;
      return stopChild(child, 10_000);
    },
  };
}

export interface RedisProcess {
  pid: number;
  port: number;
  dir: string;
  stop(): Promise<string>;
}

export async function startRedis(opts: { cleanup: Cleanup; binary: string }): Promise<RedisProcess> {
  const dir = makeTempDir('spillway-bench-redis-', opts.cleanup);
  // redis-server has no "port 0": take a free port and hand it over. If something grabs it in
  // between, redis-server exits and start-up fails loudly below.
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no', '--logfile', path.join(dir, 'redis.log')];
  const child = spawn(opts.binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  opts.cleanup.add('redis-server', async () => {
    await stopChild(child, 10_000);
  });
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new BenchError('REDIS_START', `redis-server exited: ${stderr}${readIfExists(path.join(dir, 'redis.log'))}`);
      try {
        const c = await RespClient.connect(port);
        const pong = await c.command(['PING']);
        await c.close();
        return pong === 'PONG';
      } catch {
        return false;
      }
    },
    15_000,
    'redis-server to answer PING',
  );
  if (child.pid === undefined) throw new BenchError('REDIS_START', 'redis-server has no pid');
  return { pid: child.pid, port, dir, stop: () => stopChild(child, 10_000) };
}

function readIfExists(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BenchError('TIMEOUT', `${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

export interface ToolRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  ms: number;
}

/**
 * Runs `cmd` to exit and times it from spawn to exit. stdin and stdout are file descriptors (or
 * ignored), so the bench process does no work while the tool is being timed; stderr is kept.
 * The process is killed if it outlives `timeoutMs`; with `group` (a shell that starts others)
 * it runs in a process group of its own, and the whole group is killed.
 */
export function runTool(
  cmd: string,
  args: readonly string[],
  opts: { stdin: 'ignore' | number; stdout: 'ignore' | number; timeoutMs: number; env?: Readonly<Record<string, string>>; group?: boolean },
): Promise<ToolRun> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const env = opts.env ? { ...process.env, ...opts.env } : undefined;
    const child: ChildProcess = spawn(cmd, args, { stdio: [opts.stdin, opts.stdout, 'pipe'], env, detached: opts.group === true });
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      if (opts.group === true && child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      } else child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      const ms = performance.now() - started;
      if (timedOut) reject(new BenchError('TIMEOUT', `${cmd} ${args.join(' ')} did not finish within ${opts.timeoutMs} ms; stderr: ${stderr}`));
      else resolve({ code, signal, stderr, ms });
    });
  });
}

export interface NatsProcess {
  pid: number;
  port: number;
  dir: string;
  version: string;
  stop(): Promise<string>;
}

/** Resolves with the server's INFO line once something on `port` speaks NATS, else undefined. */
function natsInfo(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let text = '';
    const done = (v: string | undefined) => {
      socket.destroy();
      resolve(v);
    };
    socket.setTimeout(1000, () => done(undefined));
    socket.on('error', () => done(undefined));
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      const nl = text.indexOf('\r\n');
      if (nl >= 0) done(text.startsWith('INFO ') ? text.slice(5, nl) : undefined);
    });
  });
}

/**
 * A private nats-server with JetStream on a free port and a fresh store dir, bound to loopback.
 * (A system nats-server may already listen on 4222; it is never used.)
 */
export async function startNats(opts: { cleanup: Cleanup; binary: string }): Promise<NatsProcess> {
  const dir = makeTempDir('spillway-bench-nats-', opts.cleanup);
  const port = await freePort();
  const args = ['-js', '-sd', dir, '-p', String(port), '-a', '127.0.0.1', '-l', path.join(dir, 'nats.log')];
  const child = spawn(opts.binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  opts.cleanup.add('nats-server', async () => {
    await stopChild(child, 10_000);
  });
  let info: string | undefined;
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new BenchError('NATS_START', `nats-server exited: ${stderr}${readIfExists(path.join(dir, 'nats.log'))}`);
      info = await natsInfo(port);
      return info !== undefined;
    },
    15_000,
    'nats-server to send INFO',
  );
  if (child.pid === undefined) throw new BenchError('NATS_START', 'nats-server has no pid');
  let version = 'unknown';
  try {
    const parsed: unknown = JSON.parse(info ?? '{}');
    if (typeof parsed === 'object' && parsed !== null && 'version' in parsed && typeof parsed.version === 'string') version = parsed.version;
  } catch {
    // keep 'unknown': the version is only printed
  }
  return { pid: child.pid, port, dir, version, stop: () => stopChild(child, 10_000) };
}
