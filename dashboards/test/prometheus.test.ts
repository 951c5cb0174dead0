/**
 * Every query of every dashboard panel, evaluated by a real Prometheus (Debian package) that
 * scrapes a running stack under load: broker, gateway, drainer, simulator and Redis as real
 * processes. A query that is invalid or returns no series fails the test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  freePort,
  repoRoot,
  startBrokerProcess,
  startGatewayProcess,
  startRedis,
  startSpillway,
  tempDir,
  waitFor,
  type BrokerProcess,
  type GatewayProcess,
  type RedisProcess,
  type SpillwayProcess,
} from '../../lib/src/testing/processes.ts';

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
}

const dashboard = JSON.parse(fs.readFileSync(path.join(repoRoot, 'dashboards/grafana/spillway-overview.json'), 'utf8')) as { panels: Panel[] };
const TOKEN = 'prom-test-token';

let redis: RedisProcess;
let broker: BrokerProcess;
let gateway: GatewayProcess;
let downstream: SpillwayProcess & { readyLine: Record<string, unknown> };
let drainer: SpillwayProcess & { readyLine: Record<string, unknown> };
let prometheus: ChildProcess;
let promUrl: string;
let load: Promise<void>;
let stopLoad = false;

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<number> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  await r.arrayBuffer();
  return r.status;
}

beforeAll(async () => {
  redis = await startRedis();
  broker = await startBrokerProcess();
  downstream = await startSpillway(['downstream', '--port', '0', '--rate', '0'], { ready: (l) => l.msg === 'downstream listening' });
  const downstreamUrl = `http://127.0.0.1:${downstream.readyLine.port as number}`;
  gateway = await startGatewayProcess({ redisUrl: redis.url, kafkaBrokers: broker.bootstrap, args: ['--admin-token', TOKEN, '--rate-limit', '0'] });
  const dir = tempDir('prom-stack');
  const config = path.join(dir, 'drainer.yaml');
  fs.writeFileSync(
    config,
    ['downstreams:', '  - name: fulfilment', `    url: ${downstreamUrl}/orders`, '    rate: 300', '    burst: 30', '    retry: { attempts: 2, backoffMs: 50, jitter: 0.5 }', ''].join('\n'),
  );
  drainer = await startSpillway(['drainer', '--config', config, '--metrics-port', '0', '--redis-url', redis.url, '--kafka-brokers', broker.bootstrap], {
    ready: (l) => l.msg === 'drainer running',
  });
  // Transient failures (retries) on a share of deliveries.
  await fetch(`${downstreamUrl}/control`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ failStatus: 500, failRatio: 0.1 }) });
  await fetch(`${gateway.url}/v1/admin/skus`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ skus: [{ sku: 'SKU-SCARCE', stock: 20, perUserLimit: 0 }, { sku: 'SKU-PLENTY', stock: 100_000, perUserLimit: 0 }] }),
  });

  const promPort = await freePort();
  promUrl = `http://127.0.0.1:${promPort}`;
  const promDir = tempDir('prometheus');
  const target = (job: string, port: number) => `  - job_name: ${job}\n    static_configs: [{ targets: ['127.0.0.1:${port}'] }]`;
  fs.writeFileSync(
    path.join(promDir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      'scrape_configs:',
      target('broker', broker.metricsPort),
      target('gateway', gateway.port),
      target('drainer', drainer.readyLine.metricsPort as number),
      '',
    ].join('\n'),
  );
  prometheus = spawn('prometheus', [`--config.file=${path.join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(promDir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`], {
    stdio: 'ignore',
  });
  await waitFor(async () => (await fetch(`${promUrl}/-/ready`)).ok, { what: 'prometheus ready', timeoutMs: 30_000 });

  // Load: accepted orders, sold-out rejections, poison orders (dead letters), topic records.
  load = (async () => {
    for (let i = 0; !stopLoad; i++) {
      const batch = Array.from({ length: 20 }, (_, j) => {
        const n = i * 20 + j;
        const sku = n % 10 === 0 ? 'SKU-SCARCE' : 'SKU-PLENTY';
        const metadata = n % 25 === 0 ? { simulate: '400' } : undefined;
        return post(`${gateway.url}/v1/orders`, { sku, userId: `u-${n}`, quantity: 1, priceCents: 100, ...(metadata ? { metadata } : {}) });
      });
      await Promise.all(batch);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
}, 120_000);

afterAll(async () => {
  stopLoad = true;
  await load?.catch(() => undefined);
  prometheus?.kill('SIGTERM');
  for (const p of [drainer, gateway, downstream]) await p?.kill('SIGTERM');
  await broker?.kill('SIGTERM');
  await redis?.stop();
});

interface QueryResult {
  status: string;
  error?: string;
  data?: { result: unknown[] };
}

describe('dashboard queries against a real Prometheus', () => {
  const queries = dashboard.panels.filter((p) => p.type !== 'row').flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

  it('every panel query is valid and returns series while the stack is under load', async () => {
    expect(queries.length).toBeGreaterThan(20);
    const missing = new Map<string, string>();
    // Rates over [1m] need a few scrapes; retry until every query has data (or time runs out).
    await waitFor(
      async () => {
        missing.clear();
        for (const q of queries) {
          const r = (await (await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q.expr)}`)).json()) as QueryResult;
          if (r.status !== 'success') throw new Error(`invalid query in "${q.panel}": ${q.expr}: ${r.error}`);
          if ((r.data?.result.length ?? 0) === 0) missing.set(q.expr, q.panel);
        }
        return missing.size === 0;
      },
      { timeoutMs: 60_000, intervalMs: 2000, what: 'every dashboard query to return series' },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\nno series for:\n${[...missing].map(([e, p]) => `  [${p}] ${e}`).join('\n')}`);
    });
  }, 90_000);
});
