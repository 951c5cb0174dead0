/**
 * `spillway up` (what `npm start` runs): the whole stack on this machine — Redis (the one at
 * REDIS_URL, or a local redis-server with append-only persistence in ./data/redis), the broker,
 * the downstream simulator, a gateway and a drainer — with a sample sale loaded, the URLs
 * printed, a live one-line status, and a clean stop of every process on Ctrl-C.
 *
 * It only spawns `spillway <command>` processes; it imports no component.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.join(here, 'spillway.mjs');

interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<number | null>;
}

function sampleDrainerConfig(downstreamPort: number): string {
  return [
    '# Sample downstream for `spillway up` (edit freely; see README "Drainer").',
    'downstreams:',
    '  - name: fulfilment',
    `    url: http://127.0.0.1:${downstreamPort}/orders`,
    '    topic: orders',
    '    rate: 100            # deliveries per second outside the windows below',
    '    burst: 10',
    '    timeoutMs: 5000',
    '    timezone: UTC',
    '    windows:',
    '      - { from: "22:00", to: "06:00", rate: 200 }   # off-peak: full rate',
    '',
  ].join('\n');
}

const SAMPLE_SKUS = [
  { sku: 'SKU-PHONE', stock: 1000, perUserLimit: 2 },
  { sku: 'SKU-CONSOLE', stock: 500, perUserLimit: 1 },
  { sku: 'SKU-SNEAKER', stock: 5000, perUserLimit: 4 },
];

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.setTimeout(500, () => {
      s.destroy();
      resolve(false);
    });
  });
}

async function waitForPort(host: string, port: number, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await portOpen(host, port))) {
    if (Date.now() > deadline) throw new Error(`${what} did not come up on ${host}:${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir, cmd);
    if (fs.existsSync(p)) return p;
  }
  return null;
}

export async function main(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: { 'data-dir': { type: 'string' }, help: { type: 'boolean' }, quiet: { type: 'boolean' } },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      [
        'usage: spillway up [--data-dir ./data] [--quiet]',
        '',
        'Starts Redis (REDIS_URL, or a local redis-server), the broker, the downstream simulator, a gateway',
        'and a drainer, loads a sample sale, and prints a live status line. Ctrl-C stops everything.',
        'Ports: SPILLWAY_BROKER_PORT (9092), SPILLWAY_GATEWAY_PORT (8080), SPILLWAY_DOWNSTREAM_PORT (8090),',
        'SPILLWAY_BROKER_METRICS_PORT (9400), SPILLWAY_DRAINER_METRICS_PORT (9401).',
      ].join('\n') + '\n',
    );
    return;
  }
  const dataDir = path.resolve(values['data-dir'] ?? process.env.SPILLWAY_DATA_DIR ?? './data');
  fs.mkdirSync(dataDir, { recursive: true });
  const env = process.env;
  const brokerPort = Number(env.SPILLWAY_BROKER_PORT ?? 9092);
  const gatewayPort = Number(env.SPILLWAY_GATEWAY_PORT ?? 8080);
  const downstreamPort = Number(env.SPILLWAY_DOWNSTREAM_PORT ?? 8090);
  const brokerMetricsPort = Number(env.SPILLWAY_BROKER_METRICS_PORT ?? 9400);
  const drainerMetricsPort = Number(env.SPILLWAY_DRAINER_METRICS_PORT ?? 9401);
  const adminToken = env.SPILLWAY_ADMIN_TOKEN ?? randomBytes(12).toString('hex');
  const children: Child[] = [];
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const logFile = fs.createWriteStream(path.join(dataDir, 'spillway-up.log'), { flags: 'a' });

  const start = (name: string, cmd: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Child => {
    const proc = spawn(cmd, args, { env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    const tag = (chunk: Buffer) => logFile.write(chunk.toString().replace(/^(?=.)/gm, `[${name}] `));
    proc.stdout?.on('data', tag);
    proc.stderr?.on('data', tag);
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    const child = { name, proc, exited };
    children.push(child);
    return child;
  };

  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nstopping…\n');
    // Reverse start order: drainer and gateway first (they finish in-flight work), Redis last.
    for (const c of [...children].reverse()) {
      if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGTERM');
      const t = setTimeout(() => c.proc.kill('SIGKILL'), 15_000);
      await c.exited;
      clearTimeout(t);
      log(`  ${c.name} stopped`);
    }
    logFile.end();
    process.exit(code);
  };
  process.once('SIGINT', () => void stopAll(0));
  process.once('SIGTERM', () => void stopAll(0));

  try {
    // Redis: the configured one if it answers, else a local redis-server with persistence.
    let redisUrl = env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const u = new URL(redisUrl);
    if (!(await portOpen(u.hostname, Number(u.port || 6379)))) {
      const server = which('redis-server');
      if (server === null) throw new Error(`nothing answers at ${redisUrl} and redis-server is not installed: apt-get install redis-server (or set REDIS_URL)`);
      const redisDir = path.join(dataDir, 'redis');
      fs.mkdirSync(redisDir, { recursive: true });
      const port = Number(u.port || 6379);
      start('redis', server, ['--port', String(port), '--bind', '127.0.0.1', '--dir', redisDir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '']);
      await waitForPort('127.0.0.1', port, 'redis-server');
      redisUrl = `redis://127.0.0.1:${port}`;
      log(`redis       ${redisUrl} (local redis-server, data in ${redisDir})`);
    } else {
      log(`redis       ${redisUrl}`);
    }
    const common = { REDIS_URL: redisUrl, KAFKA_BROKERS: `127.0.0.1:${brokerPort}` };

    start('broker', process.execPath, [bin, 'broker', '--port', String(brokerPort), '--metrics-port', String(brokerMetricsPort), '--data-dir', path.join(dataDir, 'broker')]);
    await waitForPort('127.0.0.1', brokerPort, 'broker');
    start('downstream', process.execPath, [bin, 'downstream', '--port', String(downstreamPort), '--rate', env.SPILLWAY_DOWNSTREAM_RATE ?? '200']);
    await waitForPort('127.0.0.1', downstreamPort, 'downstream simulator');
    start('gateway', process.execPath, [bin, 'gateway', '--port', String(gatewayPort)], { ...common, SPILLWAY_ADMIN_TOKEN: adminToken });
    await waitForPort('127.0.0.1', gatewayPort, 'gateway');
    const drainerConfig = path.join(dataDir, 'drainer.yaml');
    if (!fs.existsSync(drainerConfig)) fs.writeFileSync(drainerConfig, sampleDrainerConfig(downstreamPort));
    // A V8 old-space limit makes V8 collect the drainer's garbage early: its heap stays near its
    // live size (tens of MB) instead of growing to ~150 MB between full collections (README, Memory).
    start('drainer', process.execPath, ['--max-old-space-size=512', bin, 'drainer', '--config', drainerConfig, '--metrics-port', String(drainerMetricsPort)], common);
    await waitForPort('127.0.0.1', drainerMetricsPort, 'drainer');

    const gw = `http://127.0.0.1:${gatewayPort}`;
    const auth = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
    await fetch(`${gw}/v1/admin/skus`, { method: 'PUT', headers: auth, body: JSON.stringify({ skus: SAMPLE_SKUS }) });
    log(`broker      127.0.0.1:${brokerPort} (Kafka protocol)  metrics http://127.0.0.1:${brokerMetricsPort}/metrics  data ${path.join(dataDir, 'broker')}`);
    log(`gateway     ${gw}  (POST /v1/orders, GET /v1/orders/:id, /metrics)`);
    log(`admin       ${gw}/v1/admin  token: ${env.SPILLWAY_ADMIN_TOKEN ? '(from SPILLWAY_ADMIN_TOKEN)' : adminToken}`);
    log(`drainer     http://127.0.0.1:${drainerMetricsPort}/metrics  config ${drainerConfig}`);
    log(`downstream  http://127.0.0.1:${downstreamPort}/stats (simulator)`);
    log(`sample sale ${SAMPLE_SKUS.map((s) => `${s.sku} (${s.stock}, ≤${s.perUserLimit}/user)`).join(', ')}`);
    log(`try         curl -s -XPOST ${gw}/v1/orders -H 'content-type: application/json' -d '{"sku":"SKU-PHONE","userId":"u-1","quantity":1,"priceCents":79900}'`);
    log(`logs        ${path.join(dataDir, 'spillway-up.log')}     Ctrl-C stops everything`);

    for (const c of children) {
      void c.exited.then((code) => {
        if (!stopping) {
          log(`\n${c.name} exited unexpectedly (code ${code}); see the log`);
          void stopAll(1);
        }
      });
    }
    if (!values.quiet) statusLoop(gw, auth, downstreamPort);
  } catch (err) {
    process.stderr.write(`spillway up: ${(err as Error).message}\n`);
    await stopAll(1);
  }
}

/** One live line: intake/s, backlog, drain/s, ETA. */
function statusLoop(gw: string, auth: Record<string, string>, downstreamPort: number): void {
  let last: { t: number; accepted: number; delivered: number } | null = null;
  const tick = async () => {
    try {
      const metrics = await (await fetch(`${gw}/metrics`)).text();
      const accepted = Number(/spillway_gateway_orders_total\{outcome="accepted"\} (\d+)/.exec(metrics)?.[1] ?? 0);
      const stats = (await (await fetch(`http://127.0.0.1:${downstreamPort}/stats`)).json()) as { received: number };
      const backlog = (await (await fetch(`${gw}/v1/admin/backlog`, { headers: auth })).json()) as { backlog: number; etaSeconds: number; shedding: boolean };
      const now = Date.now();
      if (last) {
        const dt = (now - last.t) / 1000;
        const line = `intake ${((accepted - last.accepted) / dt).toFixed(0)}/s | backlog ${backlog.backlog} | drain ${((stats.received - last.delivered) / dt).toFixed(0)}/s | ETA ${Math.round(backlog.etaSeconds)} s${backlog.shedding ? ' | SHEDDING' : ''} | accepted ${accepted} delivered ${stats.received}`;
        process.stdout.write(`\r${line.padEnd(100)}`);
      }
      last = { t: now, accepted, delivered: stats.received };
    } catch {
      // a component is starting or stopping
    }
  };
  setInterval(() => void tick(), 2000).unref();
  void tick();
}
