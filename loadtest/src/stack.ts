/**
 * `--up`: a private stack for one run — `spillway up` with a temp data dir, free ports, its own
 * redis-server, a generated admin token, and the scenario's `spillwayStack` settings (drainer
 * rate and burst, simulator capacity, gateway env such as the backlog budget). It only spawns
 * processes; it imports no component.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, spillwayBin, tempDir } from '../../lib/src/testing/processes.ts';
import { stackEnvironment } from './config.ts';

/** What a scenario may export as `spillwayStack` (real k6 ignores it). */
export interface StackProfile {
  gateway?: { env?: Record<string, string> };
  drainer?: { rate?: number; burst?: number; concurrency?: number; windowSeconds?: number };
  downstream?: { rate?: number; burst?: number; latencyMs?: number };
}

export interface Stack {
  baseUrl: string;
  adminToken: string;
  downstreamUrl: string;
  downstreamName: string;
  kafkaBrokers: string;
  rate: { rate: number; burst: number };
  dataDir: string;
  logFile: string;
  stop(): Promise<number | null>;
}

export interface StackPorts {
  gateway: number;
  downstream: number;
  broker: number;
  brokerMetrics: number;
  drainerMetrics: number;
  redis: number;
}

export async function allocatePorts(): Promise<StackPorts> {
  return {
    gateway: await freePort(),
    downstream: await freePort(),
    broker: await freePort(),
    brokerMetrics: await freePort(),
    drainerMetrics: await freePort(),
    redis: await freePort(),
  };
}

export function readProfile(exported: unknown): StackProfile {
  return typeof exported === 'object' && exported !== null ? (exported as StackProfile) : {};
}

export function newAdminToken(): string {
  return `lt-${randomBytes(12).toString('hex')}`;
}

export async function startStack(profile: StackProfile, ports: StackPorts, adminToken: string, log: (line: string) => void): Promise<Stack> {
  const dataDir = tempDir('loadtest');
  const name = 'fulfilment';
  const rate = profile.drainer?.rate ?? 100;
  const burst = profile.drainer?.burst ?? 10;
  const drainer = [
    'downstreams:',
    `  - name: ${name}`,
    `    url: http://127.0.0.1:${ports.downstream}/orders`,
    '    topic: orders',
    `    rate: ${rate}`,
    `    burst: ${burst}`,
    ...(profile.drainer?.concurrency !== undefined ? [`    concurrency: ${profile.drainer.concurrency}`] : []),
    ...(profile.drainer?.windowSeconds !== undefined ? [`    windowSeconds: ${profile.drainer.windowSeconds}`] : []),
    '    retry: { attempts: 5, backoffMs: 200, jitter: 0.5 }',
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dataDir, 'drainer.yaml'), drainer);
  const env = stackEnvironment({
    SPILLWAY_BROKER_PORT: String(ports.broker),
    SPILLWAY_GATEWAY_PORT: String(ports.gateway),
    SPILLWAY_DOWNSTREAM_PORT: String(ports.downstream),
    SPILLWAY_BROKER_METRICS_PORT: String(ports.brokerMetrics),
    SPILLWAY_DRAINER_METRICS_PORT: String(ports.drainerMetrics),
    REDIS_URL: `redis://127.0.0.1:${ports.redis}`,
    SPILLWAY_ADMIN_TOKEN: adminToken,
    SPILLWAY_DOWNSTREAM_RATE: String(profile.downstream?.rate ?? 200),
    SPILLWAY_DOWNSTREAM_BURST: String(profile.downstream?.burst ?? 20),
    SPILLWAY_DOWNSTREAM_LATENCY_MS: String(profile.downstream?.latencyMs ?? 0),
    SPILLWAY_LOG_LEVEL: 'warn',
    ...(profile.gateway?.env ?? {}),
  });
  const proc = spawn(process.execPath, [spillwayBin, 'up', '--data-dir', dataDir, '--quiet'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 90_000;
  while (!out.includes('Ctrl-C stops everything')) {
    if (proc.exitCode !== null) throw new Error(`spillway up exited (${proc.exitCode}):\n${out}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`spillway up did not start within 90 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  log(`stack up: gateway http://127.0.0.1:${ports.gateway}, simulator http://127.0.0.1:${ports.downstream} (${profile.downstream?.rate ?? 200}/s), drainer ${rate}/s + burst ${burst}, data ${dataDir}`);
  return {
    baseUrl: `http://127.0.0.1:${ports.gateway}`,
    adminToken,
    downstreamUrl: `http://127.0.0.1:${ports.downstream}`,
    downstreamName: name,
    kafkaBrokers: `127.0.0.1:${ports.broker}`,
    rate: { rate, burst },
    dataDir,
    logFile: path.join(dataDir, 'spillway-up.log'),
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGINT');
      const t = setTimeout(() => proc.kill('SIGKILL'), 40_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}
