/**
 * The chaos stack: every part real and separately killable. A redis-server with an append-only
 * file fsynced on every write (what a flash sale should run: stock decrements survive a crash of
 * Redis), the broker with its data dir on a small tmpfs (so its disk can be filled), one or more
 * gateways and drainers as child processes, and the downstream simulator served from this process
 * (its ledger must outlive a "downstream stop"; it is closed and re-opened on the same port, so
 * the drainers see refused connections, as with a real outage).
 *
 * It owns processes and mounts, never verdicts (see verify.ts). It reuses lib/src/testing (process
 * starters), drainer/test/support/harness.ts (drainer config and starter) and the loadtest's
 * simulator (loadtest/src/downstream/server.ts).
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { createLogger } from '../../lib/src/logger.ts';
import { freePort, run, startBrokerProcess, startRedis, startSpillway, tempDir, waitFor, type BrokerProcess, type GatewayProcess, type RedisProcess } from '../../lib/src/testing/processes.ts';
import { startDrainer, writeDrainerConfig, type DrainerProcess } from '../../drainer/test/support/harness.ts';
import { DownstreamSimulator } from '../../loadtest/src/downstream/server.ts';

export const REDIS_AOF = ['--appendonly', 'yes', '--appendfsync', 'always'];
export const DOWNSTREAM = 'fulfilment';
export const ADMIN_TOKEN = 'chaos-admin-token';
/** Start-up bound of a (re)started process: generous, the machine may be shared and loaded. */
const START_TIMEOUT_MS = 120_000;

export interface StackOptions {
  gateways: number;
  drainers: number;
  /** The drainers' fleet-wide delivery rate (deliveries/s). */
  drainerRate: number;
  /** The downstream's capacity (429 above it). */
  downstreamRate: number;
  /** Service time of each delivery at the downstream (keeps deliveries in flight when a drainer dies). */
  downstreamLatencyMs: number;
  /** Size of the broker's tmpfs (MiB). */
  tmpfsMb: number;
  log: (line: string) => void;
}

/** One accepted delivery seen by the downstream. */
export interface Delivery {
  at: number;
  key: string;
  orderId: string;
  userId: string;
}

/**
 * The simulator's handler with a tap: every delivery answered 200 is recorded with its
 * Idempotency-Key and the orderId in its body (the simulator's own ledger counts, this keeps the
 * per-order detail the per-fault table needs).
 */
class Downstream {
  readonly sim: DownstreamSimulator;
  readonly deliveries: Delivery[] = [];
  port = 0;
  private server: http.Server | null = null;

  constructor(rate: number, latencyMs: number) {
    this.sim = new DownstreamSimulator({ initial: { rate, burst: Math.max(1, Math.round(rate / 10)), latencyMs }, log: createLogger('downstream', 'warn') });
  }

  private readonly handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (req.url === '/orders' && req.method === 'POST') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      res.once('finish', () => {
        if (res.statusCode !== 200) return;
        let order: { orderId?: unknown; userId?: unknown } = {};
        try {
          order = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof order;
        } catch {
          order = {};
        }
        this.deliveries.push({ at: Date.now(), key: String(req.headers['idempotency-key'] ?? ''), orderId: String(order.orderId ?? ''), userId: String(order.userId ?? '') });
      });
    }
    this.sim.handle(req, res);
  };

  async open(port = 0): Promise<void> {
    const server = http.createServer({ keepAliveTimeout: 5000 }, this.handle);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Refuses connections from now on: the listener is closed and open connections are cut. */
  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s === null) return;
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    s.closeAllConnections();
    await closed;
  }

  get isOpen(): boolean {
    return this.server !== null;
  }
}

/** Stacks not stopped yet, so that an interrupted run can still stop its processes and unmount. */
export const liveStacks = new Set<ChaosStack>();

export class ChaosStack {
  redisProc!: RedisProcess;
  redis!: Redis;
  broker!: BrokerProcess;
  brokerPort = 0;
  brokerDir = '';
  /** Why the disk-full fault cannot run (null: the broker's data dir is a tmpfs of our own). */
  diskFaultUnavailable: string | null = null;
  readonly gateways: GatewayProcess[] = [];
  /** Gateways a load balancer would route to (false while killed). */
  readonly gatewayUp: boolean[] = [];
  readonly gatewayPorts: number[] = [];
  readonly drainers: DrainerProcess[] = [];
  readonly downstream: Downstream;
  drainerConfig = '';
  private mounted = false;
  private readonly root: string;

  constructor(readonly opts: StackOptions) {
    this.downstream = new Downstream(opts.downstreamRate, opts.downstreamLatencyMs);
    this.root = tempDir('chaos');
    liveStacks.add(this);
  }

  get brokers(): string {
    return `127.0.0.1:${this.brokerPort}`;
  }

  async start(): Promise<void> {
    const { log } = this.opts;
    this.brokerDir = path.join(this.root, 'broker');
    fs.mkdirSync(this.brokerDir);
    const m = await run('mount', ['-t', 'tmpfs', '-o', `size=${this.opts.tmpfsMb}m`, 'tmpfs', this.brokerDir], { timeoutMs: 10_000 }).catch((err: unknown) => ({ code: -1, stderr: String(err) }));
    if (m.code === 0) {
      this.mounted = true;
      log(`broker data dir: tmpfs of ${this.opts.tmpfsMb} MiB at ${this.brokerDir}`);
    } else {
      this.diskFaultUnavailable = `cannot mount a tmpfs for the broker's data dir (${m.stderr.trim() || `exit ${m.code}`}); the disk-full fault is skipped`;
      log(this.diskFaultUnavailable);
    }
    const redisDir = path.join(this.root, 'redis');
    fs.mkdirSync(redisDir);
    const [redisProc, broker] = await Promise.all([
      startRedis({ dir: redisDir, args: REDIS_AOF }),
      startBrokerProcess({ dataDir: this.brokerDir }),
    ]);
    this.redisProc = redisProc;
    this.broker = broker;
    this.brokerPort = broker.port;
    this.redis = new Redis(this.redisProc.url, { maxRetriesPerRequest: 1, lazyConnect: false });
    this.redis.on('error', () => undefined);
    await this.downstream.open();
    for (let i = 0; i < this.opts.gateways; i++) this.gatewayPorts.push(await freePort());
    for (let i = 0; i < this.opts.gateways; i++) {
      this.gateways[i] = await this.startGateway(i);
      this.gatewayUp[i] = true;
    }
    this.drainerConfig = writeDrainerConfig([
      { name: DOWNSTREAM, url: `http://127.0.0.1:${this.downstream.port}/orders`, topic: 'orders', rate: this.opts.drainerRate, burst: Math.max(1, Math.round(this.opts.drainerRate / 10)) },
    ]);
    for (let i = 0; i < this.opts.drainers; i++) this.drainers[i] = await this.startDrainer();
    log(
      `stack: redis-server :${this.redisProc.port} (AOF, appendfsync always), broker ${this.brokers}, ${this.opts.gateways} gateway(s) ${this.gatewayPorts.map((p) => `:${p}`).join(' ')}, ` +
        `${this.opts.drainers} drainer(s) at ${this.opts.drainerRate}/s, downstream :${this.downstream.port} capped at ${this.opts.downstreamRate}/s (${this.opts.downstreamLatencyMs} ms per delivery)`,
    );
  }

  gatewayUrl(i: number): string {
    return `http://127.0.0.1:${this.gatewayPorts[i]}`;
  }

  /** As startGatewayProcess, on the gateway's own port, with a start-up bound for a loaded machine. */
  async startGateway(i: number): Promise<GatewayProcess> {
    const p = await startSpillway(
      ['gateway', '--port', String(this.gatewayPorts[i]), '--redis-url', this.redisProc.url, '--kafka-brokers', this.brokers, '--admin-token', ADMIN_TOKEN, '--rate-limit', '0', '--append-timeout-ms', '3000'],
      { ready: (l) => l.msg === 'gateway listening', timeoutMs: START_TIMEOUT_MS },
    );
    return { ...p, port: this.gatewayPorts[i], url: this.gatewayUrl(i) };
  }

  startDrainer(): Promise<DrainerProcess> {
    return startDrainer({ config: this.drainerConfig, redisUrl: this.redisProc.url, kafkaBrokers: this.brokers });
  }

  /** The broker on its port and data dir again; as startBrokerProcess, with a start-up bound for a loaded machine. */
  async restartBroker(): Promise<void> {
    const p = await startSpillway(['broker', '--port', String(this.brokerPort), '--metrics-port', '0', '--data-dir', this.brokerDir], {
      ready: (l) => l.msg === 'broker listening',
      timeoutMs: START_TIMEOUT_MS,
    });
    this.broker = { ...p, port: this.brokerPort, metricsPort: p.readyLine.metricsPort as number, dataDir: this.brokerDir, bootstrap: this.brokers };
  }

  async restartRedis(): Promise<void> {
    this.redisProc = await startRedis({ port: this.redisProc.port, dir: this.redisProc.dir, args: REDIS_AOF });
  }

  /** Fills the broker's tmpfs until ENOSPC; returns the filler's path and size. */
  async fillDisk(): Promise<{ file: string; bytes: number }> {
    const file = path.join(this.brokerDir, 'chaos-filler');
    const fh = await fs.promises.open(file, 'w');
    // Megabytes first, then the last partial pages (tmpfs may take a few KiB more).
    let bytes = await writeUntilFull(fh, 1024 * 1024);
    bytes += await writeUntilFull(fh, 4096);
    await fh.close();
    return { file, bytes };
  }

  /** Everything that should be running answers: gateways /readyz, drainers /healthz, broker and redis alive. */
  async healthy(): Promise<string[]> {
    const problems: string[] = [];
    if (this.broker.proc.exitCode !== null || this.broker.proc.signalCode !== null) problems.push('broker exited');
    if (this.redisProc.proc.exitCode !== null || this.redisProc.proc.signalCode !== null) problems.push('redis-server exited');
    await Promise.all(
      this.gateways.map(async (g, i) => {
        if (g.proc.exitCode !== null || g.proc.signalCode !== null) return problems.push(`gateway ${i} exited`);
        const r = await fetch(`${this.gatewayUrl(i)}/readyz`, { signal: AbortSignal.timeout(5000) }).catch(() => null);
        if (r?.status !== 200) problems.push(`gateway ${i} /readyz ${r?.status ?? 'no answer'}`);
      }),
    );
    await Promise.all(
      this.drainers.map(async (d, i) => {
        if (d.proc.exitCode !== null || d.proc.signalCode !== null) return problems.push(`drainer ${i} exited`);
        const r = await fetch(`${d.metricsUrl}/healthz`, { signal: AbortSignal.timeout(5000) }).catch(() => null);
        if (r?.status !== 200) problems.push(`drainer ${i} /healthz ${r?.status ?? 'no answer'}`);
      }),
    );
    return problems;
  }

  /** The last warnings and errors each process logged (to explain a recovery that did not come). */
  recentProblems(perProcess = 3): string[] {
    const procs: [string, { logs: Record<string, unknown>[]; stderr: string[] }][] = [
      ['broker', this.broker],
      ...this.gateways.map((g, i): [string, GatewayProcess] => [`gateway ${i}`, g]),
      ...this.drainers.map((d, i): [string, DrainerProcess] => [`drainer ${i}`, d]),
    ];
    const out: string[] = [];
    for (const [name, p] of procs) {
      const bad = p.logs.filter((l) => typeof l.level === 'number' && l.level >= 40).slice(-perProcess);
      for (const l of bad) out.push(`${name}: ${JSON.stringify({ msg: l.msg, err: l.err, reason: l.reason, error: l.error }).slice(0, 400)}`);
      const err = p.stderr.join('').trim();
      if (err !== '') out.push(`${name} stderr: ${err.slice(-400)}`);
    }
    return out;
  }

  /** Waits (bounded) until every process answers healthy; returns what still is not. */
  async waitHealthy(timeoutMs: number): Promise<string[]> {
    let last: string[] = [];
    try {
      await waitFor(
        async () => {
          last = await this.healthy();
          return last.length === 0;
        },
        { timeoutMs, intervalMs: 500, what: 'every process healthy' },
      );
    } catch {
      return last;
    }
    return [];
  }

  async stop(): Promise<void> {
    liveStacks.delete(this);
    await this.downstream.close();
    await Promise.allSettled([...this.drainers.map((d) => d.kill('SIGKILL')), ...this.gateways.map((g) => g.kill('SIGKILL'))]);
    this.redis?.disconnect();
    await Promise.allSettled([this.broker?.kill('SIGKILL'), this.redisProc?.stop('SIGKILL')]);
    if (this.mounted) {
      const u = await run('umount', [this.brokerDir], { timeoutMs: 10_000 });
      if (u.code !== 0) await run('umount', ['-l', this.brokerDir], { timeoutMs: 10_000 });
    }
    fs.rmSync(this.root, { recursive: true, force: true });
    if (this.drainerConfig !== '') fs.rmSync(path.dirname(this.drainerConfig), { recursive: true, force: true });
  }
}

/** Appends `chunkBytes` blocks to `fh` until the file system is full (ENOSPC or a short write); returns the bytes written. */
async function writeUntilFull(fh: fs.promises.FileHandle, chunkBytes: number): Promise<number> {
  const chunk = Buffer.alloc(chunkBytes, 0x5a);
  let bytes = 0;
  try {
    for (;;) {
      const { bytesWritten } = await fh.write(chunk, 0, chunk.length);
      bytes += bytesWritten;
      if (bytesWritten < chunk.length) break;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
  return bytes;
}
