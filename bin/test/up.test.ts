/**
 * `spillway up` on a fresh data dir: a burst of orders is accepted, shows up as backlog and is
 * delivered to the simulator; SIGINT stops every process (no stray children); a second
 * `spillway up` resumes the remaining backlog.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, run, spillwayBin, tempDir, waitFor } from '../../lib/src/testing/processes.ts';

const TOKEN = 'up-test-token';
const procs: ChildProcess[] = [];
afterAll(() => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
});

async function up(dataDir: string, env: NodeJS.ProcessEnv): Promise<{ proc: ChildProcess; out: () => string; exited: Promise<number | null> }> {
  const proc = spawn(process.execPath, [spillwayBin, 'up', '--data-dir', dataDir, '--quiet'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(proc);
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
  await waitFor(() => out.includes('Ctrl-C stops everything') || proc.exitCode !== null, { timeoutMs: 60_000, what: 'spillway up to start' });
  if (proc.exitCode !== null) throw new Error(`spillway up exited: ${out}`);
  return { proc, out: () => out, exited };
}

/** Processes whose command line mentions the data dir (every child of `up` does). */
async function processesUsing(dataDir: string): Promise<string[]> {
  const r = await run('pgrep', ['-af', dataDir]);
  return r.stdout
    .toString()
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.includes('pgrep'));
}

describe('spillway up', () => {
  it('accepts a burst, drains it, stops cleanly on SIGINT, and resumes the backlog on the next start', async () => {
    const dataDir = tempDir('up');
    // A slow downstream so that a backlog is still there when we stop.
    fs.writeFileSync(path.join(dataDir, 'drainer.yaml'), '');
    const ports = {
      SPILLWAY_BROKER_PORT: String(await freePort()),
      SPILLWAY_GATEWAY_PORT: String(await freePort()),
      SPILLWAY_DOWNSTREAM_PORT: String(await freePort()),
      SPILLWAY_BROKER_METRICS_PORT: String(await freePort()),
      SPILLWAY_DRAINER_METRICS_PORT: String(await freePort()),
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      SPILLWAY_ADMIN_TOKEN: TOKEN,
      SPILLWAY_RATE_LIMIT: '0', // the burst comes from one client address
    };
    fs.writeFileSync(
      path.join(dataDir, 'drainer.yaml'),
      `downstreams:\n  - name: fulfilment\n    url: http://127.0.0.1:${ports.SPILLWAY_DOWNSTREAM_PORT}/orders\n    rate: 25\n    burst: 5\n`,
    );
    const gw = `http://127.0.0.1:${ports.SPILLWAY_GATEWAY_PORT}`;
    const sim = `http://127.0.0.1:${ports.SPILLWAY_DOWNSTREAM_PORT}`;
    const auth = { authorization: `Bearer ${TOKEN}` };

    const first = await up(dataDir, ports);
    expect(fs.existsSync(path.join(dataDir, 'redis'))).toBe(true); // it started its own redis-server
    const ids: string[] = [];
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const r = await fetch(`${gw}/v1/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ sku: 'SKU-SNEAKER', userId: `burst-${i}`, quantity: 1, priceCents: 12900 }),
        });
        expect(r.status).toBe(202);
        ids.push(((await r.json()) as { orderId: string }).orderId);
      }),
    );
    // It shows up as backlog, and deliveries begin.
    await waitFor(async () => ((await (await fetch(`${gw}/v1/admin/backlog`, { headers: auth })).json()) as { backlog: number }).backlog > 0, { what: 'backlog' });
    await waitFor(async () => ((await (await fetch(`${sim}/stats`)).json()) as { received: number }).received > 20, { what: 'first deliveries' });

    first.proc.kill('SIGINT');
    expect(await first.exited).toBe(0);
    expect(first.out()).toContain('broker stopped');
    expect(await processesUsing(dataDir)).toEqual([]);

    // Second start: the remaining backlog is delivered; every order ends up delivered.
    const second = await up(dataDir, ports);
    const statusOf = async (id: string) => ((await (await fetch(`${gw}/v1/orders/${id}`)).json()) as { status: string }).status;
    await waitFor(async () => (await Promise.all(ids.map(statusOf))).every((s) => s === 'delivered'), { timeoutMs: 60_000, intervalMs: 500, what: 'every order delivered' });
    second.proc.kill('SIGINT');
    expect(await second.exited).toBe(0);
    expect(await processesUsing(dataDir)).toEqual([]);
  }, 150_000);
});
