/**
 * The processes of a drainer bench run: drainer processes (`spillway drainer`, optionally under
 * --cpu-prof), the bare kafkajs consumer child, and an RSS sampler over /proc/PID/status.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onLines, startSpillway, tempDir, waitFor, type SpillwayProcess } from '../../lib/src/testing/processes.ts';
import { cpuSeconds } from './report.ts';

/** Start-up (tsx compiling a component) can take long on a busy 2-core machine. */
export const START_TIMEOUT_MS = 120_000;

export interface DownstreamSpec {
  name: string;
  url: string;
  topic: string;
  rate: number;
  burst?: number;
  concurrency?: number;
  windowSeconds?: number;
}

/** Writes a downstreams file (JSON) and returns its path. */
export function writeDrainerConfig(downstreams: DownstreamSpec[]): string {
  const file = path.join(tempDir('bench-drainer-config'), 'downstreams.json');
  fs.writeFileSync(file, JSON.stringify({ downstreams }, null, 2));
  return file;
}

/** SIGTERM (a clean stop: writes a --cpu-prof profile), then SIGKILL if it has not exited within `ms`. */
export async function stopProcess(p: SpillwayProcess, ms = 45_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
  const first = await Promise.race([p.kill('SIGTERM'), late]);
  clearTimeout(timer);
  if (first !== 'late') return first;
  process.stderr.write(`pid ${p.proc.pid ?? '?'} did not stop within ${ms} ms of SIGTERM: SIGKILL\n`);
  return p.kill('SIGKILL');
}

export type BrokerProcess = SpillwayProcess & { bootstrap: string; dataDir: string };

/** `spillway broker` on a free port in a fresh dir (startBrokerProcess with a start-up timeout for a loaded machine). */
export async function startBroker(): Promise<BrokerProcess> {
  const dataDir = tempDir('bench-drainer-broker');
  const p = await startSpillway(['broker', '--port', '0', '--metrics-port', '0', '--data-dir', dataDir], {
    ready: (l) => l.msg === 'broker listening',
    timeoutMs: START_TIMEOUT_MS,
  });
  return { ...p, dataDir, bootstrap: `127.0.0.1:${p.readyLine.port as number}` };
}

export type DrainerProcess = SpillwayProcess & {
  pid: number;
  metricsPort: number;
  /** performance.now() and CPU seconds used when it reported "drainer running" (start-up excluded from its CPU figure). */
  readyAt: number;
  cpuAtReady: number;
};

/** Node flags of the bench's drainers: BENCH_DRAINER_NODE_FLAGS, default the V8 heap limit the stack runs the drainer with. */
export const DRAINER_NODE_FLAGS = process.env.BENCH_DRAINER_NODE_FLAGS ?? '--max-old-space-size=512';

export async function startDrainer(opts: { config: string; redisUrl: string; kafkaBrokers: string; cpuProfDir?: string }): Promise<DrainerProcess> {
  // --cpu-prof is not allowed in NODE_OPTIONS: it goes on the node command line.
  // As `spillway up` and docker-compose run it (see DRAINER_NODE_FLAGS).
  const nodeFlags: string[] = DRAINER_NODE_FLAGS.split(/\s+/).filter((f) => f !== '');
  if (opts.cpuProfDir !== undefined) {
    fs.mkdirSync(opts.cpuProfDir, { recursive: true });
    nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`);
  }
  const p = await startSpillway(['drainer', '--config', opts.config, '--redis-url', opts.redisUrl, '--kafka-brokers', opts.kafkaBrokers, '--metrics-port', '0', '--dlq-topic', 'bench.dlq'], {
    ready: (l) => l.msg === 'drainer running',
    nodeArgs: nodeFlags,
    timeoutMs: START_TIMEOUT_MS,
  });
  const pid = p.proc.pid;
  if (pid === undefined) throw new Error('drainer has no pid');
  return { ...p, pid, metricsPort: p.readyLine.metricsPort as number, readyAt: performance.now(), cpuAtReady: cpuSeconds(pid) ?? 0 };
}

export interface BareProcess {
  proc: ChildProcess;
  pid: number;
  readyAt: number;
  cpuAtReady: number;
  /** Stops the consumer (SIGTERM) and resolves with its summary line. */
  stop(): Promise<BareSummary>;
}

export interface BareSummary {
  posted: number;
  failed: number;
}

const bareScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'bare-consumer.ts');

/** The reference: a kafkajs consumer that POSTs each record (bench/drainer/bare-consumer.ts). */
export async function startBare(opts: { brokers: string; topic: string; group: string; url: string; inFlight: number }): Promise<BareProcess> {
  const proc = spawn(process.execPath, ['--import', 'tsx', bareScript], {
    env: {
      ...process.env,
      BARE_BROKERS: opts.brokers,
      BARE_TOPIC: opts.topic,
      BARE_GROUP: opts.group,
      BARE_URL: opts.url,
      BARE_IN_FLIGHT: String(opts.inFlight),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Record<string, unknown>[] = [];
  onLines(proc.stdout, (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      lines.push({ raw: line });
    }
  });
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve((exitCode = code))));
  const pid = proc.pid;
  if (pid === undefined) throw new Error('bare consumer did not start');
  await waitFor(
    () => {
      if (exitCode !== undefined) throw new Error(`bare consumer exited with ${exitCode}`);
      return lines.some((l) => l.msg === 'bare running');
    },
    { timeoutMs: START_TIMEOUT_MS, what: 'the bare consumer to start' },
  ).catch((err: unknown) => {
    proc.kill('SIGKILL');
    throw err;
  });
  return {
    proc,
    pid,
    readyAt: performance.now(),
    cpuAtReady: cpuSeconds(pid) ?? 0,
    stop: async () => {
      if (exitCode === undefined) proc.kill('SIGTERM');
      const late = setTimeout(() => proc.kill('SIGKILL'), 30_000);
      const code = await exited;
      clearTimeout(late);
      const done = lines.find((l) => l.msg === 'bare stopped');
      if (!done) throw new Error(`bare consumer exited with ${code} without a summary`);
      return { posted: Number(done.posted), failed: Number(done.failed) };
    },
  };
}

export function readRssBytes(pid: number): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return undefined; // exited
  }
  const m = /^VmRSS:\s+(\d+) kB/m.exec(text);
  return m ? Number(m[1]) * 1024 : undefined;
}

export interface RssFigures {
  /** First sample, taken once the process reported ready (before any delivery). */
  startMb: number;
  peakMb: number;
  endMb: number;
  samples: number;
}

/** Samples one process's VmRSS every `intervalMs` (200 ms). */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private readonly values: number[] = [];

  constructor(
    readonly pid: number,
    private readonly intervalMs = 200,
  ) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    return this;
  }

  private sample(): void {
    const v = readRssBytes(this.pid);
    if (v !== undefined) this.values.push(v);
  }

  stop(): RssFigures {
    this.sample();
    clearInterval(this.timer);
    this.timer = undefined;
    const mb = (b: number) => b / 1e6;
    if (this.values.length === 0) return { startMb: Number.NaN, peakMb: Number.NaN, endMb: Number.NaN, samples: 0 };
    return {
      startMb: mb(this.values[0]),
      peakMb: mb(Math.max(...this.values)),
      endMb: mb(this.values[this.values.length - 1]),
      samples: this.values.length,
    };
  }
}

/**
 * Samples the drainer's V8 heap in use (prom-client's default metric on its /metrics) every
 * `intervalMs`: RSS also holds freed-but-unreturned memory, the heap in use is what the drainer
 * keeps alive (e.g. per-record state for everything it has pumped).
 */
export class HeapSampler {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  peakBytes = 0;
  /** Event-loop delay p99 (ms) per sample: how late the process ran (a shared, loaded machine shows here). */
  readonly lagP99Ms: number[] = [];
  /** Longest event-loop delay (ms) seen per epoch second (prom-client resets it on every scrape). */
  readonly lagMaxBySecond = new Map<number, number>();

  constructor(
    private readonly metricsPort: number,
    private readonly intervalMs = 1000,
  ) {}

  start(): this {
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    return this;
  }

  private async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const res = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`);
      const text = await res.text();
      const m = /^spillway_drainer_nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
      if (m) this.peakBytes = Math.max(this.peakBytes, Number(m[1]));
      const lag = /^spillway_drainer_nodejs_eventloop_lag_p99_seconds (\S+)$/m.exec(text);
      if (lag) this.lagP99Ms.push(Number(lag[1]) * 1000);
      const max = /^spillway_drainer_nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text);
      if (max) {
        const sec = Math.floor(Date.now() / 1000);
        this.lagMaxBySecond.set(sec, Math.max(this.lagMaxBySecond.get(sec) ?? 0, Number(max[1]) * 1000));
      }
    } catch {
      // stopping, or too busy to answer: the next sample counts
    } finally {
      this.busy = false;
    }
  }

  /** Peak heap in use, MB (NaN if never read). */
  stop(): number {
    clearInterval(this.timer);
    this.timer = undefined;
    return this.peakBytes > 0 ? this.peakBytes / 1e6 : Number.NaN;
  }
}
