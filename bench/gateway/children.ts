/**
 * The bench's own child processes, forked with the bench's node flags (tsx): the load generator
 * (driven step by step over IPC) and the reference servers; and the gateway under --cpu-prof. Each dies with the bench (they exit
 * on IPC disconnect) and is stopped explicitly by its owner otherwise.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FromGenerator, FromReference, LoadConfig, ReferenceKind, StepCommand, StepStats } from './protocol.ts';
import { onLines } from '../../lib/src/testing/processes.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('exit', () => resolve()));
}

async function stopChild(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const done = exited(proc);
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
  await done;
  clearTimeout(timer);
}

export class GeneratorProcess {
  private onMark: ((phase: 'start' | 'end') => void) | null = null;
  private pending: { resolve: (s: StepStats) => void; reject: (e: Error) => void } | null = null;

  private constructor(private readonly proc: ChildProcess) {
    proc.on('message', (raw: unknown) => {
      const m = raw as FromGenerator;
      if (m.type === 'mark') this.onMark?.(m.phase);
      else if (m.type === 'result') {
        this.pending?.resolve(m.stats);
        this.pending = null;
      } else if (m.type === 'failed') {
        this.pending?.reject(new Error(`load generator: ${m.message}`));
        this.pending = null;
      }
    });
    proc.once('exit', (code) => {
      this.pending?.reject(new Error(`load generator exited with ${String(code)}`));
      this.pending = null;
    });
  }

  get pid(): number {
    return this.proc.pid as number;
  }

  /** Forks the generator, configures it and opens its initial connections. */
  static async start(cfg: Omit<LoadConfig, 'type'>): Promise<{ gen: GeneratorProcess; connections: number }> {
    const proc = fork(path.join(HERE, 'loadgen-child.ts'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const gen = new GeneratorProcess(proc);
    const connections = await new Promise<number>((resolve, reject) => {
      const onMessage = (raw: unknown) => {
        const m = raw as FromGenerator;
        if (m.type === 'ready') resolve(m.connections);
        else if (m.type === 'failed') reject(new Error(`load generator: ${m.message}`));
      };
      proc.on('message', onMessage);
      proc.once('exit', (code) => reject(new Error(`load generator exited with ${String(code)} before it was ready`)));
      const config: LoadConfig = { type: 'config', ...cfg };
      proc.send(config);
    });
    return { gen, connections };
  }

  /** Runs one step; `onMark` is called at the start and the end of its measured window. */
  step(cmd: Omit<StepCommand, 'type'>, onMark: (phase: 'start' | 'end') => void): Promise<StepStats> {
    if (this.pending !== null) return Promise.reject(new Error('a step is already running'));
    this.onMark = onMark;
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      const m: StepCommand = { type: 'step', ...cmd };
      this.proc.send(m);
    });
  }

  async stop(): Promise<void> {
    if (this.proc.connected) this.proc.send({ type: 'exit' });
    const timer = setTimeout(() => void stopChild(this.proc), 2000);
    await exited(this.proc);
    clearTimeout(timer);
  }
}

export interface ReferenceServer {
  kind: ReferenceKind;
  pid: number;
  port: number;
  stop(): Promise<void>;
}

export async function startReference(kind: ReferenceKind): Promise<ReferenceServer> {
  const proc = fork(path.join(HERE, 'ref-server.ts'), [kind], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    proc.once('message', (raw: unknown) => resolve((raw as FromReference).port));
    proc.once('exit', (code) => reject(new Error(`reference server ${kind} exited with ${String(code)}`)));
  });
  return { kind, pid: proc.pid as number, port, stop: () => stopChild(proc) };
}

export interface ProfiledGateway {
  pid: number;
  port: number;
  url: string;
  /** SIGTERM, then waits for the exit (the profile is written on the way out). */
  stop(): Promise<number | null>;
}

/**
 * `node --cpu-prof ... bin/spillway.mjs gateway ...`: Node refuses --cpu-prof in NODE_OPTIONS, so
 * the profiled gateway is spawned here rather than through startGatewayProcess (same CLI, same
 * readiness line). V8 writes the .cpuprofile into `profileDir` when the process exits normally.
 */
export async function startProfiledGateway(opts: { spillwayBin: string; cwd: string; profileDir: string; intervalUs: number; args: string[] }): Promise<ProfiledGateway> {
  const proc = spawn(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${opts.profileDir}`, `--cpu-prof-interval=${opts.intervalUs}`, opts.spillwayBin, 'gateway', '--port', '0', ...opts.args], {
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const done = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d: string) => (stderr += d));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the profiled gateway did not start: ${stderr}`)), 30_000);
    onLines(proc.stdout, (line) => {
      try {
        const parsed = JSON.parse(line) as { msg?: unknown; port?: unknown };
        if (parsed.msg === 'gateway listening' && typeof parsed.port === 'number') {
          clearTimeout(timer);
          resolve(parsed.port);
        }
      } catch {
        // not a log line
      }
    });
    void done.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the profiled gateway exited with ${String(code)}: ${stderr}`));
    });
  });
  return {
    pid: proc.pid as number,
    port,
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      const code = await done;
      clearTimeout(timer);
      return code;
    },
  };
}
