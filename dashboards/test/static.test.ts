/** The observability and deployment files are valid: promtool, alert-rule unit tests, compose, dashboard JSON. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, run } from '../../lib/src/testing/processes.ts';

const prom = path.join(repoRoot, 'dashboards/prometheus');

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: { expr: string; refId: string }[];
}

describe('prometheus config and alert rules', () => {
  it('pass promtool check and the rule unit tests', async () => {
    const rules = await run('promtool', ['check', 'rules', path.join(prom, 'alerts.yml')]);
    expect(rules.code, rules.stdout.toString() + rules.stderr).toBe(0);
    const config = await run('promtool', ['check', 'config', path.join(prom, 'prometheus.yml')]);
    expect(config.code, config.stdout.toString() + config.stderr).toBe(0);
    const tests = await run('promtool', ['test', 'rules', path.join(prom, 'alerts.test.yml')]);
    expect(tests.code, tests.stdout.toString() + tests.stderr).toBe(0);
  });
});

describe('docker-compose.yml', () => {
  it('is valid, with and without the kafka profile', async () => {
    const file = path.join(repoRoot, 'docker-compose.yml');
    const plain = await run('docker-compose', ['-f', file, 'config', '-q']);
    expect(plain.code, plain.stderr).toBe(0);
    const kafka = await run('docker-compose', ['-f', file, '--profile', 'kafka', 'config']);
    expect(kafka.code, kafka.stderr).toBe(0);
    const out = kafka.stdout.toString();
    expect(out).toContain('apache/kafka');
    // The real Kafka answers under the embedded broker's name, so gateways and drainers need no change.
    expect(out).toMatch(/aliases:\s*\n\s*- broker/);
    expect(out).toContain('KAFKA_BROKERS: broker:9092');
    expect(fs.readFileSync(path.join(repoRoot, '.env'), 'utf8')).toContain('COMPOSE_PROFILES=embedded');
  });
});

describe('grafana dashboard', () => {
  const dash = JSON.parse(fs.readFileSync(path.join(repoRoot, 'dashboards/grafana/spillway-overview.json'), 'utf8')) as {
    uid: string;
    templating: { list: { name: string; type: string }[] };
    panels: Panel[];
  };
  it('has a stable uid, a datasource variable, unique panel ids, and a query on every panel', () => {
    expect(dash.uid).toBe('spillway-overview');
    expect(dash.templating.list).toContainEqual(expect.objectContaining({ name: 'datasource', type: 'datasource' }));
    const ids = dash.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dash.panels.filter((x) => x.type !== 'row')) {
      expect(p.datasource?.uid, p.title).toBe('${datasource}');
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets ?? []) expect(t.expr.trim(), p.title).not.toBe('');
    }
  });
  it('covers what operators watch', () => {
    const exprs = dash.panels.flatMap((p) => p.targets ?? []).map((t) => t.expr).join('\n');
    for (const metric of [
      'spillway_gateway_orders_total',
      'spillway_gateway_intake_duration_seconds_bucket',
      'spillway_drainer_lag_messages',
      'spillway_drainer_lag_seconds',
      'spillway_drainer_drain_eta_seconds',
      'spillway_drainer_rate_limit',
      'spillway_drainer_window_open',
      'spillway_drainer_delivery_duration_seconds_bucket',
      'spillway_drainer_dead_letters_total',
      'spillway_drainer_retries_total',
      'spillway_broker_bytes_in_total',
      'spillway_broker_fsync_duration_seconds_bucket',
      'spillway_broker_log_size_bytes',
      'spillway_gateway_stock_remaining',
    ]) {
      expect(exprs).toContain(metric);
    }
  });
});
